"""Going back when a run breaks: the break detector behind ``train.max_rewinds``.

Every long run of the `default` recipe broke the same way somewhere between step 7,700 and
20,000 (README "The shipped model"): within a few dozen steps G's reconstruction loss jumps from
about 0.1 to 0.8, then D wins and the gradients stop being finite. Replays of the same checkpoint
perturbed in the last bits break at nearly the same step, and going back to an earlier checkpoint
with lower learning rates carried runs past it. So with ``train.max_rewinds`` > 0 the
loop (:mod:`sketchcolor.training.loop`) does that itself: when :class:`BreakWatch` sees the break
(or ``train.max_bad_steps`` steps in a row are not finite), the run goes back to its best
validated checkpoint and continues with both learning rates multiplied by
``train.rewind_lr_factor`` (compounding over rewinds); the scale is carried in checkpoints, so a
resumed run keeps it.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

# Log points (train.log_every steps apart) the reference median is taken over, and how many must
# be there before the watch can fire (a fresh run has no history yet; a resumed or rewound one
# starts with its checkpoint's).
HISTORY = 20
MIN_HISTORY = 10
# Consecutive log points above the threshold that make a break: one bad batch is not one.
CONFIRM = 2


class BreakWatch:
    """Watches G's reconstruction loss at the log points (the same averaged value on every
    process under DDP, so every process decides alike).

    A break is ``CONFIRM`` log points in a row whose loss exceeds ``factor`` times the median of
    the ``HISTORY`` log points before them. The median, not the mean, so that the break's own
    first values do not raise the bar (points above it never enter the history, nor do non-finite
    ones). The broken runs jumped from about 0.1 to 0.8 (3.0x, then 9.5x the median at the `qk`
    run's break); over the healthy steps of two long runs the largest ratio was 2.31 for one log
    point and 1.56 for two in a row (README), hence ``train.break_factor`` 2.5 by default."""

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
        if math.isfinite(rec):  # a NaN in the history would make the median meaningless
            self.history.append(rec)
        return False

    @property
    def suspect(self) -> bool:
        """The last log point was above the bar: the run may be breaking. The loop neither
        validates nor saves a checkpoint then, so that no rewind can land on a breaking state
        (the EMA that validation scores lags G by ~1,000 steps) and a checkpoint never holds a
        half-counted break."""
        return self.above > 0
