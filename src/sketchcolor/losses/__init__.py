"""Losses of Eq. 6-11: pure functions returning tensors; objective.py weighs them."""
