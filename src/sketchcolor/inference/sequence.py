"""Many drawings, one character: a folder of frames colorized in batches with the references
encoded once (issue 13).

:func:`colorize_sequence` takes the planned targets (``sketchcolor.outputs``) in order and:

- encodes the references once (:meth:`ColorizePipeline.encode_references`: E_r and SCFT's keys
  and values), reused by every batch; several references make one attention over all their cells;
- colorizes ``batch_size`` frames per forward pass, with a progress bar and ETA (tqdm);
- writes each frame atomically (``data.io.save_image``: the color layer first, then the picture,
  so a frame whose picture exists is whole), skipping the frames the plan marks done, so a run
  started again after an interruption writes each frame once;
- with a :class:`~sketchcolor.inference.color_book.ColorBook`, snaps each frame's regions to the
  book's colors (and saves the book after every batch and when stopped);
- with ``chain``, colorizes frame t with the references *and* the colorized frame t - 1 (one
  frame at a time, since each needs the one before).

Frames are taken in natural name order (``frame2`` before ``frame10``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchcolor.data.io import load_image, save_image
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.color_book import ColorBook
from sketchcolor.inference.fixes import Fixes
from sketchcolor.inference.pipeline import ColorizePipeline, Colorization, References
from sketchcolor.inference.render import Fill
from sketchcolor.outputs import Target


def natural_key(path: Path) -> list:
    """Sort key: digit runs compared as numbers (``f2.png`` < ``f10.png``), the rest case-blind."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", path.name)]


@dataclass
class SequenceOptions:
    """How to colorize: see ``sketchcolor colorize --help``."""

    batch_size: int = 8
    extract_sketch: bool = False
    fill: Fill | None = None
    palette_snap: float = 0.0
    paint_background: bool = False
    chain: bool = False
    fixes: Fixes | None = None  # a user's hints and recolors, applied to every frame


def _print_error(line: str) -> None:
    print(f"error: {line}", file=sys.stderr)


def colorize_sequence(pipe: ColorizePipeline, targets: Sequence[Target], references: References,
                      options: SequenceOptions, done: Sequence[Target] = (), book: ColorBook | None = None,
                      book_path: Path | None = None, progress: bool = True, folder: bool = True,
                      on_error: Callable[[str], None] = _print_error) -> int:
    """Colorize ``targets`` (not ``done``: already written) in natural order; returns how many
    frames were written. In a folder run (``folder``) a bad sketch is one error line and the rest
    go on; otherwise its error is raised."""
    from tqdm.auto import tqdm

    if options.batch_size < 1:
        raise SketchColorError(f"--batch-size must be at least 1, got {options.batch_size}")
    fill = options.fill or ("guided" if options.extract_sketch else "regions")
    order = sorted([*targets, *done], key=lambda t: natural_key(t.sketch))
    finished = {t.output for t in done}
    todo = [t for t in order if t.output not in finished]
    previous = {t.output: order[i - 1] if i else None for i, t in enumerate(order)}
    memory: dict[Path, np.ndarray] = {}  # chain: the last frame written, kept to avoid reading it back
    batch = 1 if options.chain else options.batch_size
    written = 0
    bar = tqdm(total=len(todo), desc="colorize", unit="frame", disable=not progress)
    try:
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            frames, kept = [], []
            for t in chunk:
                try:
                    frames.append(pipe.load_frame(t.sketch, options.extract_sketch))
                    kept.append(t)
                except SketchColorError as e:
                    if not folder:
                        raise
                    on_error(str(e))  # one bad file must not stop a folder
                    bar.update(1)
            if not frames:
                continue
            refs = _chained(pipe, references, previous[kept[0].output], memory) if options.chain else references
            results = pipe.colorize_frames(frames, refs, fill=fill, palette_snap=options.palette_snap,
                                           paint_background=options.paint_background, book=book,
                                           fixes=options.fixes)
            for t, result in zip(kept, results):
                _write(t, result)
                written += 1
                bar.update(1)
                if options.chain:
                    memory = {t.output: result.image}
            if book is not None and book_path is not None:
                book.save(book_path)
    finally:
        bar.close()
        if book is not None and book_path is not None:
            book.save(book_path)  # an interrupted run keeps what the book learned
    return written


def _chained(pipe: ColorizePipeline, references: References, prev: Target | None,
             memory: dict[Path, np.ndarray]) -> References:
    """The references plus the colorized previous frame (held in memory, else read from its output)."""
    if prev is None:
        return references
    image = memory.get(prev.output)
    if image is None:
        if not prev.output.is_file():
            return references  # the previous frame failed: the references alone
        try:
            image = load_image(prev.output)
        except SketchColorError:
            return references
    return references.plus(pipe.encode_references(image, cache=references.features is not None))


def _write(target: Target, result: Colorization) -> None:
    """The color layer first, then the picture: a frame whose picture exists is complete."""
    if target.layer is not None:
        save_image(result.color_layer, target.layer)
    save_image(result.image, target.output)
