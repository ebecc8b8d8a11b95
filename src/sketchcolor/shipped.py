"""Where the files that ship with sketchcolor lie: the default weights, the demo's examples, the tiny recipe.

Names are paths relative to the repository root, such as ``weights/default``. A wheel carries these
files as package data under ``sketchcolor/_shipped/<name>`` (``setup.py`` copies them in at build
time; the list is ``SHIPPED`` there), found here through ``importlib.resources``. An editable install
(``pip install -e .``, as the Makefile does) has no ``_shipped`` folder and reads the checkout itself.
"""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path


def shipped_path(name: str) -> Path:
    """The installed copy of ``name`` in a wheel install, else the checkout's; it may not exist."""
    parts = name.split("/")
    packaged = files("sketchcolor").joinpath("_shipped")
    if packaged.is_dir():  # a regular install: files() of a package on disk is a pathlib.Path
        return Path(str(packaged.joinpath(*parts)))
    return Path(__file__).resolve().parents[2].joinpath(*parts)


def read_example_pairs(examples: Path) -> list[tuple[Path, Path, str]]:
    """The rows of ``examples/pairs.csv`` (columns sketch, reference, kind; paths relative to
    ``examples``) -> (sketch path, reference path, kind "cross" or "self"), in file order."""
    with (examples / "pairs.csv").open(newline="", encoding="utf-8") as fh:
        return [(examples / r["sketch"], examples / r["reference"], r["kind"]) for r in csv.DictReader(fh)]
