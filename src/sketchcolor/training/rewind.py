"""Going back when a run breaks: the detector, and the learning-rate scale a rewind leaves.

Every long run of the `default` recipe broke the same way somewhere between step 7,700 and
20,000 (README "The shipped model"): within a few dozen steps G's reconstruction loss jumps from
about 0.1 to 0.8, then D wins and the gradients stop being finite. The break replays bit for bit
from a checkpoint, and the same checkpoint continued at half the learning rates passes it. So with
``train.max_rewinds`` > 0 the loop (:mod:`sketchcolor.training.loop`) does that itself: when
:class:`BreakWatch` sees the break (or the steps stop being finite), the run goes back to its best
validated checkpoint and continues with both learning rates multiplied by
``train.rewind_lr_factor``; the scale is carried in checkpoints, so a resumed run keeps it.
"""

from __future__ import annotations

import statistics
from collections import deque

# Log points (train.log_every steps apart) the reference median is taken over, and how many must
# be there before the watch can fire (a fresh or just-rewound run has no history yet).
HISTORY = 20
MIN_HISTORY = 10
# Consecutive log points above the threshold that make a break: one bad batch is not one.
CONFIRM = 2


class BreakWatch:
    """Watches G's reconstruction loss at the log points (the same averaged value on every
    process under DDP, so every process decides alike).

    A break is ``CONFIRM`` log points in a row whose loss exceeds ``factor`` times the median of
    the ``HISTORY`` log points before them. The median, not the mean, so that the break's own
    first values do not raise the bar. The broken shipped-recipe runs jumped from about 0.1 to
    0.8 (8x); the largest ratio of one log point to the median of the 20 before it over the
    healthy steps 1,000-7,500 of the `qk` run is below 2 (README), hence a default factor of 3."""

    def __init__(self, factor: float, history: list[float] | None = None) -> None:
        self.factor = factor
        self.history: deque[float] = deque(history or [], maxlen=HISTORY)  # a checkpoint's, on resume
        self.above = 0

    def broken(self, rec: float) -> bool:
        """Feed one log point's reconstruction loss; True when the run has broken."""
        if len(self.history) >= MIN_HISTORY and not rec <= self.factor * statistics.median(self.history):
            self.above += 1  # `not <=` also counts a NaN
            return self.above >= CONFIRM
        self.above = 0
        self.history.append(rec)
        return False
