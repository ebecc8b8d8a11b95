"""Image folders and the deterministic stream of training triplets drawn from them.

Listing and decoding live here; synthesis of the triplet is :mod:`sketchcolor.data.pairs`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sketchcolor.config import DataConfig
from sketchcolor.data.device_triplets import sample_recipe
from sketchcolor.data.io import letterbox, load_image, to_gray
from sketchcolor.data.pairs import make_triplet
from sketchcolor.data.paper import around_drawing
from sketchcolor.data.sketch import extract_sketch
from sketchcolor.data.sources.manifest import MANIFEST, read_manifest
from sketchcolor.data.splits import split_files
from sketchcolor.errors import ImageError, SketchColorError

log = logging.getLogger(__name__)


def list_images(root: str | Path, extensions: tuple[str, ...]) -> list[Path]:
    """All files under ``root`` (recursively) with an image extension, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SketchColorError(f"{root}: data folder not found")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


SKETCH_KINDS = ("line_art", "xdog", "hed")
# Per-example (and per-step) generators are seeded with seed * SEED_STRIDE + index: a large prime
# stride, so that the streams of neighbouring run seeds never share an example's draw.
SEED_STRIDE = 1_000_003


class ImageFolder(Dataset):
    """Color pictures letterboxed on white to ``size x size``, each with its available sketches.

    Item: ``(rgb uint8 [size, size, 3], {kind: sketch uint8 [size, size]})`` with kinds from
    :data:`SKETCH_KINDS`: XDoG always; ``line_art`` and ``hed`` when a file for them is given
    (aligned with the picture). Unreadable files are skipped (counted in ``bad_files``) in
    favour of the next readable one. With ``data.cache_images`` decoded pictures are kept, up to
    ``cache_limit`` bytes (each DataLoader worker keeps its own: training sizes the bound).
    """

    def __init__(self, files: list[Path], size: int, cfg: DataConfig,
                 sketch_files: list[dict[str, Path]] | None = None) -> None:
        if not files:
            raise SketchColorError("no training images found (looked for " + ", ".join(cfg.extensions) + ")")
        self.files = list(files)
        self.sketch_files = sketch_files or [{} for _ in files]
        if len(self.sketch_files) != len(self.files):
            raise ValueError("one sketch dict per image file is needed")
        self.size = size
        self.cfg = cfg
        self.bad_files: dict[str, str] = {}  # what this process found, with the reasons
        # which files proved unreadable in any process, in shared memory: DataLoader workers
        # decode in their own copies of this object, and the run's count must see what they found
        self.unreadable = torch.zeros(len(self.files), dtype=torch.bool).share_memory_()
        self._cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        # the most bytes of arrays the cache keeps (None: no bound); once full, further pictures
        # are decoded again each time (3-4 ms at 128-256 px, measured), and the cached ones stay
        self.cache_limit: int | None = None
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.files)

    def unreadable_files(self) -> list[str]:
        """The files found unreadable so far, by this process or its DataLoader workers."""
        return [str(f) for f, bad in zip(self.files, self.unreadable.tolist()) if bad]

    def cache_bytes_needed(self) -> int:
        """Bytes of arrays the cache holds once every picture is in it: each picture's RGB and
        sketches (XDoG, and a line art and HED file where given), uint8 at ``size``."""
        return sum(self.size * self.size * (3 + 1 + len(kinds)) for kinds in self.sketch_files)

    def _decode(self, idx: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rgb, _ = letterbox(load_image(self.files[idx]), self.size)
        sketches = {"xdog": extract_sketch(rgb, self.cfg, force=True)}
        for kind, path in self.sketch_files[idx].items():
            sketches[kind] = to_gray(letterbox(load_image(path), self.size)[0])
        return rgb, sketches

    def __getitem__(self, idx: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        for attempt in range(len(self.files)):
            j = (idx + attempt) % len(self.files)
            if j in self._cache:
                return self._cache[j]
            if bool(self.unreadable[j]):
                continue
            try:
                item = self._decode(j)
            except ImageError as e:
                self.bad_files[str(self.files[j])] = str(e)
                self.unreadable[j] = True
                log.warning("skipping %s", e)
                continue
            if self.cfg.cache_images:
                size = item[0].nbytes + sum(a.nbytes for a in item[1].values())
                if self.cache_limit is None or self._cached_bytes + size <= self.cache_limit:
                    self._cache[j] = item
                    self._cached_bytes += size
            return item
        raise SketchColorError("no readable training images: "
                               + "; ".join(list(self.bad_files.values())[:3] or self.unreadable_files()[:3]))


def open_images(data_dir: str | Path, size: int, cfg: DataConfig, split: str, val_fraction: float = 0.0) -> ImageFolder:
    """The pictures of one split of ``data_dir``.

    A folder made by ``sketchcolor prepare-data`` (with ``manifest.csv``) uses the manifest's
    split and its aligned sketches; any other folder of images is split by a stable hash of each
    file's path (``val_fraction`` to validation, no test split).
    """
    root = Path(data_dir)
    if (root / MANIFEST).is_file():
        rows = [r for r in read_manifest(root) if r.split == split]
        if not rows:
            raise SketchColorError(f"{root / MANIFEST}: no pictures in split {split!r}")
        sketches = [{k: root / getattr(r, attr) for k, attr in (("line_art", "sketch"), ("hed", "hed")) if getattr(r, attr)}
                    for r in rows]
        return ImageFolder([root / r.image for r in rows], size, cfg, sketches)
    train, val = split_files(list_images(root, cfg.extensions), root, val_fraction)
    if split == "train":
        return ImageFolder(train, size, cfg)
    if split == "val":
        return ImageFolder(val, size, cfg)
    raise SketchColorError(f"{root}: a plain image folder has no {split!r} split (prepare it with `sketchcolor prepare-data folder`)")


def pick_sketch(sketches: dict[str, np.ndarray], cfg: DataConfig, gen: torch.Generator) -> np.ndarray:
    """Choose one of a picture's sketches with the configured weights (normalised over those present)."""
    weights = {"line_art": cfg.line_art_weight, "xdog": cfg.xdog_weight, "hed": cfg.hed_weight}
    kinds = [k for k in SKETCH_KINDS if k in sketches and weights[k] > 0] or ["xdog"]
    w = torch.tensor([weights[k] for k in kinds], dtype=torch.float64)
    return sketches[kinds[int(torch.multinomial(w, 1, generator=gen))]]


class TripletStream(Dataset):
    """The g-th training example of a run, for g in ``[start, start + length)``.

    Example g uses image ``perm_e[g mod N]`` with ``e = g div N`` (a fresh permutation per epoch)
    and a triplet generator seeded by ``(seed, g)``, so any example can be rebuilt from its index
    alone: a resumed run sees exactly the batches an unbroken run would, with any worker count.
    Items are dicts of ``sketch [1,H,W]``, ``reference [3,H,W]``, ``target [3,H,W]``,
    ``correspondence [h*w]`` and, with ``around``, ``around`` (bool ``[1,H,W]``: the pixels around
    the drawing, :func:`sketchcolor.data.paper.around_drawing`; only the paper term uses it).
    With ``recipes`` an item holds the triplet's draws instead of the triplet
    (:func:`sketchcolor.data.device_triplets.sample_recipe`, ``data.augment_on: device``), which
    :func:`~sketchcolor.data.device_triplets.build_triplets` applies to the batch on its device.
    """

    def __init__(self, images: ImageFolder, grid: tuple[int, int], seed: int, start: int = 0, length: int = 0,
                 around: bool = True, recipes: bool = False) -> None:
        self.images = images
        self.grid = grid
        self.around = around
        self.recipes = recipes
        self.seed = seed
        self.start = start
        self.length = length
        self._perm_epoch = -1
        self._perm: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.length

    def image_index(self, g: int) -> int:
        n = len(self.images)
        epoch = g // n
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            self._perm_epoch = epoch
        assert self._perm is not None
        return int(self._perm[g % n])

    def example(self, g: int) -> dict[str, torch.Tensor]:
        rgb, sketches = self.images[self.image_index(g)]
        gen = torch.Generator().manual_seed(self.seed * SEED_STRIDE + g)
        sketch = pick_sketch(sketches, self.images.cfg, gen)
        if self.recipes:
            example = sample_recipe(rgb, gen, self.images.cfg, sketch)
        else:
            t = make_triplet(rgb, gen, self.images.cfg, self.grid, sketch)
            example = {"sketch": t.sketch, "reference": t.reference, "target": t.target,
                       "correspondence": t.correspondence}
        if self.around:
            # the region around the drawing (the paper term's mask, less the color rule): made here,
            # in the DataLoader workers, not flooded in the training step (data.paper)
            example["around"] = around_drawing(example["sketch"][None])[0]
        return example

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.example(self.start + i)
