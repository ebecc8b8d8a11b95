"""The paper's data sets, read from a local folder in their usual layouts.

None of them can be downloaded here; a user who has one points ``sketchcolor prepare-data
<name> --source-dir ROOT`` at it and gets our manifest layout (images, aligned sketches where
the set has them, the set's own split where it has one, else a stable hash split).

| name        | layout read                                                                 |
|-------------|-----------------------------------------------------------------------------|
| tag2pix     | ``rgb_train/`` + ``rgb_test/`` color illustrations; optional aligned line art in ``keras_train/`` / ``keras_test/`` (same file names) |
| yumi        | a folder of cartoon frames (any depth); split by hash of the file name      |
| spair       | ``JPEGImages/<class>/*.jpg`` (SPair-71k); split by hash                     |
| imagenet    | ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (val -> our test)         |
| celeba      | ``img_align_celeba/*.jpg`` + ``list_eval_partition.txt`` (0 train, 1 val, 2 test) |
| edges2shoes | ``train/*.jpg`` and ``val/*.jpg``, each ``edges | photo`` side by side (val -> test); the edge map is the sketch |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sketchcolor.data.io import IMAGE_EXTENSIONS
from sketchcolor.data.splits import split_for
from sketchcolor.errors import SketchColorError

PAPER_SETS = ("tag2pix", "yumi", "spair", "imagenet", "celeba", "edges2shoes")


@dataclass(frozen=True)
class Item:
    """One picture: ``image`` path, optional aligned ``sketch`` path; ``half`` = "right"/"left"
    when image and sketch are the two halves of one side-by-side file."""

    id: str
    base_id: str
    split: str
    image: Path
    sketch: Path | None = None
    half: str | None = None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise SketchColorError(f"{path}: not found ({what})")
    return path


def list_items(name: str, root: str | Path) -> Iterator[Item]:
    """Every picture of data set ``name`` under ``root``, with its split."""
    root = Path(root)
    if not root.is_dir():
        raise SketchColorError(f"{root}: data set folder not found")
    if name == "tag2pix":
        found = False
        for part, split in (("train", "train"), ("test", "test")):
            folder = root / f"rgb_{part}"
            if not folder.is_dir():
                continue
            found = True
            for p in _images(folder):
                sk = root / f"keras_{part}" / p.relative_to(folder)
                yield Item(f"{part}-{p.stem}", p.stem, split, p, sk if sk.is_file() else None)
        if not found:
            raise SketchColorError(f"{root}: no rgb_train/ or rgb_test/ folder (Tag2pix layout)")
    elif name == "yumi":
        for p in _images(root):
            rel = p.relative_to(root).with_suffix("").as_posix()
            yield Item(rel.replace("/", "-"), rel, split_for("yumi", rel), p)
    elif name == "spair":
        for p in _images(_need(root / "JPEGImages", "SPair-71k layout: JPEGImages/<class>/")):
            rel = p.relative_to(root / "JPEGImages").with_suffix("").as_posix()
            yield Item(rel.replace("/", "-"), rel, split_for("spair", rel), p)
    elif name == "imagenet":
        if not (root / "train").is_dir() and not (root / "val").is_dir():
            raise SketchColorError(f"{root}: no train/ or val/ folder (ImageNet layout train/<wnid>/)")
        for part, split in (("train", "train"), ("val", "test")):
            if (root / part).is_dir():
                for p in _images(root / part):
                    rel = p.relative_to(root / part).with_suffix("").as_posix()
                    yield Item(f"{part}-{rel.replace('/', '-')}", rel, split, p)
    elif name == "celeba":
        images = _need(root / "img_align_celeba", "CelebA layout: img_align_celeba/")
        parts = _need(root / "list_eval_partition.txt", "CelebA partition file")
        names = {"0": "train", "1": "val", "2": "test"}
        for line in parts.read_text().splitlines():
            fields = line.split()
            if len(fields) != 2 or fields[1] not in names:
                continue
            p = images / fields[0]
            if p.is_file():
                yield Item(Path(fields[0]).stem, Path(fields[0]).stem, names[fields[1]], p)
    elif name == "edges2shoes":
        if not (root / "train").is_dir() and not (root / "val").is_dir():
            raise SketchColorError(f"{root}: no train/ or val/ folder (edges2shoes layout)")
        for part, split in (("train", "train"), ("val", "test")):
            if (root / part).is_dir():
                for p in _images(root / part):
                    yield Item(f"{part}-{p.stem}", f"{part}-{p.stem}", split, p, p, half="right")
    else:
        raise SketchColorError(f"unknown data set {name!r} (one of {', '.join(PAPER_SETS)})")
