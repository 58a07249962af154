"""How fast: scoring throughput, the allocator, selection cost, the step by rollout engine,
vLLM's CPU layout, policy-update precision, the replay window, the value model on a GPU."""
