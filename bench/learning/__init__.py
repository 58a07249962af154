"""Does choosing near p = 0.5 make the policy learn faster: the placebo-controlled evidence
and why p = 0.5 (the retired one-seed and over-seeds runs: archive.py)."""
