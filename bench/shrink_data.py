"""Copy a prepared data folder's train and val pictures at the training size, for a remote GPU.

The lent GPU machine takes at most 64 MiB of working tree, and ``data/drawings`` (163 MB at
256 px) does not fit. Training letterboxes every picture and sketch to ``model.image_size``
before anything else (:class:`sketchcolor.data.datasets.ImageFolder`), so a copy already
letterboxed to that size decodes to the very same arrays; ``--check`` proves it item by item.

    python bench/shrink_data.py data/drawings .devcarry/drawings128 --size 128 --check
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sketchcolor.config import DataConfig
from sketchcolor.data.datasets import open_images
from sketchcolor.data.io import letterbox, load_image, save_image
from sketchcolor.data.sources.manifest import read_manifest, write_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--splits", default="train,val")
    ap.add_argument("--check", action="store_true", help="decode every item from both folders and compare")
    args = ap.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    splits = args.splits.split(",")
    rows = [r for r in read_manifest(src) if r.split in splits]
    if dst.exists():  # never write into an existing folder
        raise SystemExit(f"shrink_data: {dst} already exists; name a new folder")
    dst.mkdir(parents=True)
    for r in tqdm(rows, desc="letterbox"):
        for rel in (r.image, r.sketch, r.hed):
            if rel:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                save_image(letterbox(load_image(src / rel), args.size)[0], dst / rel)
    write_manifest(dst, rows)
    if args.check:
        cfg = dataclasses.replace(DataConfig(), cache_images=False)
        for split in splits:
            a, b = open_images(src, args.size, cfg, split), open_images(dst, args.size, cfg, split)
            for i in tqdm(range(len(a)), desc=f"check {split}"):
                (ra, sa), (rb, sb) = a[i], b[i]
                same = np.array_equal(ra, rb) and sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
                if not same:
                    raise SystemExit(f"item {i} of {split} differs: {a.files[i]}")
        print("every item decodes identically")


if __name__ == "__main__":
    main()
