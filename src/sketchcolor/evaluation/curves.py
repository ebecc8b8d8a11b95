"""Loss curves of a run, read from its TensorBoard logs and drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sketchcolor.errors import SketchColorError


def read_scalars(logdir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tag: (steps, values)}`` of every scalar in the event files under ``logdir``."""
    # imported late for speed: tensorboard's reader takes seconds to import
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = Path(logdir)
    if not logdir.is_dir() or not any(logdir.rglob("events.out.tfevents.*")):
        raise SketchColorError(f"{logdir}: no TensorBoard event files")
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = np.array([e.step for e in events])
        values = np.array([e.value for e in events])
        order = np.argsort(steps, kind="stable")
        # a resumed run may log a step twice: keep the last value written for it
        _, last = np.unique(steps[order][::-1], return_index=True)
        keep = order[::-1][last]
        out[tag] = (steps[keep], values[keep])
    return out


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` points (same length; shorter windows at the start)."""
    if window <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values.astype(np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curves(logdir: str | Path, out: str | Path, title: str = "", window: int = 20) -> Path:
    """One panel per loss term (raw, faint; moving average, solid) plus the validation scores -> PNG."""
    # imported late: matplotlib is optional (the eval extra) and slow to import
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scalars = read_scalars(logdir)
    tags = [t for t in ("loss/rec", "val/l1", "val/responsiveness", "val/corr_within_one", "loss/tr", "loss/warp",
                        "loss/adv", "loss/d", "loss/perc", "loss/style", "loss/total") if t in scalars]
    if not tags:
        raise SketchColorError(f"{logdir}: no loss scalars to plot")
    cols = 4
    rows = (len(tags) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, tag in zip(axes.flat, tags):
        steps, values = scalars[tag]
        ax.plot(steps, values, color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(steps, smooth(values, 1 if tag.startswith("val/") else window), color="tab:blue", lw=1.6)
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tags):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
