"""The production service under crashes, overload and fuzzing."""
