"""``sketchcolor prepare-data``: render/copy a source to PNG on white plus a manifest, offline.

Layout of the output folder::

    images/<source>/<id>.png      color drawing on white, longer side ``size`` px
    sketches/<source>/<id>.png    aligned line art (OpenMoji only)
    manifest.csv                  id, base_id, source, split, license, attribution, title, paths

Running it for several sources into one folder merges their rows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sketchcolor.data.hed_sketch import hed_sketch
from sketchcolor.data.io import IMAGE_EXTENSIONS, load_image, resize_longer_side, save_image
from sketchcolor.data.sources import openclipart, openmoji, paper_datasets
from sketchcolor.data.sources.manifest import MANIFEST, Row, read_manifest, write_manifest
from sketchcolor.data.sources.render import render_svg
from sketchcolor.data.splits import split_for
from sketchcolor.errors import SketchColorError

log = logging.getLogger(__name__)


def _fit(rgb: np.ndarray, size: int) -> np.ndarray:
    """Longer side to ``size`` px (bicubic when enlarging: copied rasters are often small)."""
    return resize_longer_side(rgb, size, enlarge=cv2.INTER_CUBIC)


# Workers return (row or None, outcome); outcomes are counted in the summary.
def _do_emoji(args: tuple[openmoji.Emoji, Path, int]) -> tuple[Row | None, str]:
    e, out, size = args
    rel_img, rel_sk = f"images/openmoji/{e.hexcode}.png", f"sketches/openmoji/{e.hexcode}.png"
    try:
        if not (out / rel_img).is_file() or not (out / rel_sk).is_file():
            save_image(render_svg(e.color_svg, size), out / rel_img)
            save_image(cv2.cvtColor(render_svg(e.line_svg, size), cv2.COLOR_RGB2GRAY), out / rel_sk)
    except Exception as err:  # noqa: BLE001 - counted and skipped, never fatal
        return None, f"broken: {e.color_svg}: {type(err).__name__}: {err}"
    return Row(id=f"openmoji-{e.hexcode}", base_id=e.base_id, source="openmoji", split=split_for("openmoji", e.base_id),
               license=openmoji.LICENSE, attribution=f"OpenMoji (openmoji.org) by {e.author}, {openmoji.LICENSE}",
               title=e.title, image=rel_img, sketch=rel_sk), "ok"


def _do_clipart(args: tuple[openclipart.ClipArt, Path, int, int]) -> tuple[Row | None, str]:
    c, out, size, max_bytes = args
    rel_img = f"images/openclipart/{c.id}.png"
    try:
        if c.path.stat().st_size > max_bytes:
            return None, "too large"
        if (out / rel_img).is_file():
            rgb = None
        else:
            rgb = render_svg(c.path, size)
            if not openclipart.is_colored(rgb):
                return None, "not colored"
            save_image(rgb, out / rel_img)
        title, creator = openclipart.svg_metadata(c.path)
    except Exception as err:  # noqa: BLE001 - one odd SVG must not stop 8,000 others
        return None, f"broken: {c.path}: {type(err).__name__}: {err}"
    base = c.id
    attribution = f"Open Clip Art Library{f' by {creator}' if creator else ''}, public domain"
    return Row(id=f"openclipart-{c.id}", base_id=base, source="openclipart", split=split_for("openclipart", base),
               license=openclipart.LICENSE, attribution=attribution, title=title or c.path.stem, image=rel_img), "ok"


def _do_raster(args: tuple[Path, Path, Path, int]) -> tuple[Row | None, str]:
    path, root, out, size = args
    rel = path.relative_to(root)
    ident = "-".join(rel.with_suffix("").parts)
    rel_img = f"images/folder/{ident}.png"
    try:
        if not (out / rel_img).is_file():
            save_image(_fit(load_image(path), size), out / rel_img)
    except Exception as err:  # noqa: BLE001 - counted and skipped, never fatal
        return None, f"broken: {path}: {type(err).__name__}: {err}"
    return Row(id=f"folder-{ident}", base_id=rel.with_suffix("").as_posix(), source="folder",
               split=split_for("folder", rel.with_suffix("").as_posix()), license="as given by the folder's owner",
               attribution=str(root), title=path.stem, image=rel_img), "ok"


def _do_paper(args: tuple[str, object, Path, int]) -> tuple[Row | None, str]:
    name, item, out, size = args
    rel_img = f"images/{name}/{item.id}.png"
    rel_sk = f"sketches/{name}/{item.id}.png" if item.sketch is not None else ""
    try:
        if not (out / rel_img).is_file():
            rgb = load_image(item.image)
            sketch = load_image(item.sketch) if item.sketch is not None and item.half is None else None
            if item.half is not None:  # "edges | photo" side by side in one file
                w = rgb.shape[1] // 2
                rgb, sketch = rgb[:, w : 2 * w], rgb[:, :w]
            save_image(_fit(rgb, size), out / rel_img)
            if sketch is not None:
                if sketch.shape[:2] != rgb.shape[:2]:
                    sketch = cv2.resize(sketch, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
                save_image(cv2.cvtColor(_fit(sketch, size), cv2.COLOR_RGB2GRAY), out / rel_sk)
    except Exception as err:  # noqa: BLE001 - counted and skipped, never fatal
        return None, f"broken: {item.image}: {type(err).__name__}: {err}"
    return Row(id=f"{name}-{item.id}", base_id=item.base_id, source=name, split=item.split,
               license="as given by the data set's owners", attribution=name, title=item.id, image=rel_img,
               sketch=rel_sk), "ok"


def _run(fn: Callable, jobs: list, workers: int, desc: str, progress: bool) -> tuple[list[Row], Counter]:
    rows, outcomes = [], Counter()
    bar = tqdm(total=len(jobs), desc=desc, unit="file", disable=not progress, dynamic_ncols=True)
    results: Iterable
    if workers > 1:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(fn, jobs, chunksize=16)
    else:
        pool, results = None, map(fn, jobs)
    try:
        for row, outcome in results:
            kind = outcome.split(":")[0]
            outcomes[kind] += 1
            if kind == "broken":
                log.debug("skipped %s", outcome[8:])
            if row is not None:
                rows.append(row)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    return rows, outcomes


def prepare(source: str, out: str | Path, size: int = 256, src: str | Path | None = None, limit: int | None = None,
            workers: int | None = None, max_bytes: int = 3_000_000, progress: bool = True) -> dict[str, object]:
    """Prepare one source into ``out``; returns a summary (counts per split and per outcome)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if source == "openmoji":
        items = openmoji.list_emojis(openmoji.find_openmoji(src))[:limit]
        rows, outcomes = _run(_do_emoji, [(e, out, size) for e in items], workers, "openmoji", progress)
    elif source == "openclipart":
        items = openclipart.list_clipart(openclipart.find_openclipart(src))[:limit]
        rows, outcomes = _run(_do_clipart, [(c, out, size, max_bytes) for c in items], workers, "openclipart", progress)
    elif source == "folder":
        if src is None or not Path(src).is_dir():
            raise SketchColorError(f"{src}: prepare-data folder needs --source DIR with images")
        root = Path(src)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
        rows, outcomes = _run(_do_raster, [(p, root, out, size) for p in files], workers, "folder", progress)
    elif source in paper_datasets.PAPER_SETS:
        if src is None:
            raise SketchColorError(f"prepare-data {source} needs --source-dir ROOT (the data set's own folder)")
        items = list(paper_datasets.list_items(source, src))[:limit]
        rows, outcomes = _run(_do_paper, [(source, it, out, size) for it in items], workers, source, progress)
    else:
        raise SketchColorError(f"unknown source {source!r} (openmoji, openclipart, folder or {', '.join(paper_datasets.PAPER_SETS)})")
    keep = [r for r in read_manifest(out) if r.source != source] if (out / MANIFEST).is_file() else []
    write_manifest(out, keep + rows)
    return {"source": source, "written": len(rows), "outcomes": dict(outcomes),
            "splits": dict(Counter(r.split for r in rows)), "drawings": len({r.base_id for r in rows})}


def write_hed_sketches(out: str | Path, hed: nn.Module, size: int = 128, progress: bool = True) -> dict[str, object]:
    """Write an HED line drawing (longer side ``size`` px) for every manifest row that lacks one
    and record it in the manifest's ``hed`` column. HED runs once per picture, here rather than
    in the training loop, because it costs more than the colorizer's own step on a CPU.

    ``hed`` is the loaded network (the data layer imports no models):
    :func:`sketchcolor.hed_sketches.add_hed_sketches` loads it and calls this."""
    out = Path(out)
    rows = read_manifest(out)
    todo = [i for i, r in enumerate(rows) if not r.hed or not (out / r.hed).is_file()]
    outcomes: Counter = Counter()
    with torch.inference_mode():
        for n, i in enumerate(tqdm(todo, desc="hed sketches", unit="img", disable=not progress, dynamic_ncols=True)):
            r = rows[i]
            rel = f"hed/{r.source}/{r.id}.png"
            try:
                save_image(hed_sketch(_fit(load_image(out / r.image), size), hed), out / rel)
            except Exception as err:  # noqa: BLE001 - counted and skipped, never fatal
                log.debug("hed failed for %s: %s", r.image, err)
                outcomes["broken"] += 1
                continue
            rows[i] = dataclasses.replace(r, hed=rel)
            outcomes["ok"] += 1
            if n % 500 == 499:  # keep progress if interrupted
                write_manifest(out, rows)
    write_manifest(out, rows)
    return {"source": "hed", "written": outcomes["ok"], "outcomes": dict(outcomes),
            "splits": dict(Counter(r.split for r in rows if r.hed)), "drawings": len({r.base_id for r in rows if r.hed})}
