"""Bundled GRPO trainer that selects prompts through Sweetspot."""
