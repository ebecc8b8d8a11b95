"""Evaluation: picture grids (and, later, FID and friends)."""
