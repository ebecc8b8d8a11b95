"""Training: one step (step.py), checkpoints (checkpoint.py) and the loop (loop.py)."""
