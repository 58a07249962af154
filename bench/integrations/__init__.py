"""What Sweetspot costs inside other trainers: TRL and verl steps, the async prefetch."""
