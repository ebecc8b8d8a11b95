"""Triplets built batch-wise on the training device (``data.augment_on: device``).

With ``workers`` (the default) each DataLoader worker builds whole triplets
(:func:`sketchcolor.data.pairs.make_triplet`). With ``device`` a worker only reads the picture,
picks its sketch and draws a() and s() from the example's generator, the same draws in the same
order (:func:`sample_recipe`), and finds the picture's flat-color regions where the draw recolors
them one by one; the training step then applies a() and the TPS to the whole batch at once on its
device and finds the correspondence there (:func:`build_triplets`). On a CPU the triplets are
the same within float rounding (``tests/data/test_device_triplets.py``); on a GPU kornia's
RGB -> XYZ step is a convolution, which cuDNN runs in TF32 by default, so the recolored pictures
may differ from the workers' by about 1e-3 (``bench/triplet_time.py --device cuda`` prints the
difference). On a GPU whose step outruns the workers (README "Training at scale") this takes the
triplets' arithmetic off the CPU; on a CPU it only moves that work from the workers into the step.
"""

from __future__ import annotations

import numpy as np
import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.appearance import color_regions, per_region, recolor, sample_appearance
from sketchcolor.data.io import to_tensor
from sketchcolor.data.pairs import triplet_sketch
from sketchcolor.data.tps import PROBE_DENSITY, correspondence_batch, sample_at, sample_tps, warp_positions_batch

# What a worker sends per example (besides ``around``, where the paper term is on).
RECIPE_KEYS = ("sketch", "picture", "regions", "shift", "hue", "chroma_scale", "lightness", "tps_src", "tps_dst", "turn")


def sample_recipe(image: np.ndarray, gen: torch.Generator, cfg: DataConfig,
                  sketch: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The draws of :func:`sketchcolor.data.pairs.make_triplet` for uint8 RGB ``image [H, W, 3]``
    (the same numbers from ``gen``), unapplied: ``sketch [1, H, W]`` and ``picture [3, H, W]`` in
    [-1, 1]; ``regions`` uint8 ``[H, W]`` (a()'s region slots, zeros when one recoloring covers the
    picture); a()'s ``shift [3]``, ``hue``, ``chroma_scale``, ``lightness`` ``[slots]``; the TPS's
    ``tps_src``, ``tps_dst`` ``[K, 2]`` and ``turn [2, 2]`` (the identity for none)."""
    sketch = triplet_sketch(image, cfg, sketch)
    picture = to_tensor(image)
    look = sample_appearance(gen, cfg)
    params = sample_tps(gen, cfg.tps_grid, cfg.tps_scale, cfg.mirror, cfg.rotation)
    if cfg.appearance == "lab" and per_region(look):
        regions = color_regions(picture).to(torch.uint8)  # slots < REGION_SLOTS = 16
    else:
        regions = torch.zeros(picture.shape[-2:], dtype=torch.uint8)
    return {"sketch": to_tensor(sketch), "picture": picture, "regions": regions, "shift": look.shift,
            "hue": look.hue, "chroma_scale": look.chroma_scale, "lightness": look.lightness,
            "tps_src": params.src, "tps_dst": params.dst,
            "turn": params.turn if params.turn is not None else torch.eye(2)}


def build_triplets(batch: dict[str, torch.Tensor], cfg: DataConfig, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A batch of :func:`sample_recipe` (stacked, on the device) -> the batch the training step
    takes: ``sketch [B, 1, H, W]``, ``reference``, ``target`` ``[B, 3, H, W]``, ``correspondence``
    ``[B, h * w]`` for the ``grid (h, w)`` of the model's features (and ``around`` passed on)."""
    picture = batch["picture"]
    n, _, h, w = picture.shape
    assert picture.shape[1] == 3 and batch["regions"].shape == (n, h, w) and batch["shift"].shape == (n, 3), (
        tuple(picture.shape), tuple(batch["regions"].shape), tuple(batch["shift"].shape))
    assert batch["turn"].shape == (n, 2, 2) and batch["tps_src"].shape == batch["tps_dst"].shape, (
        tuple(batch["turn"].shape), tuple(batch["tps_src"].shape), tuple(batch["tps_dst"].shape))
    target = picture
    if cfg.appearance == "lab":
        slots = batch["regions"].long().flatten(1)  # [B, HW]

        def per_pixel(values: torch.Tensor) -> torch.Tensor:  # [B, slots] -> [B, H, W]
            return values.gather(1, slots).view(n, h, w)

        target = recolor(picture, per_pixel(batch["hue"]), per_pixel(batch["chroma_scale"]),
                         per_pixel(batch["lightness"]))
    target = (target + batch["shift"][:, :, None, None]).clamp(-1.0, 1.0)  # a(I)
    src, dst, turn = batch["tps_src"], batch["tps_dst"], batch["turn"]
    positions = warp_positions_batch(src, dst, turn, h, w)
    reference = sample_at(target, positions)  # s(a(I)), white where nothing lands
    gh, gw = grid
    if (h, w) != (gh * PROBE_DENSITY, gw * PROBE_DENSITY):  # probes are the pixel centers at every recipe's size
        positions = warp_positions_batch(src, dst, turn, gh * PROBE_DENSITY, gw * PROBE_DENSITY)
    out = {"sketch": batch["sketch"], "reference": reference, "target": target,
           "correspondence": correspondence_batch(positions, gh, gw, cfg.correspondence_tolerance)}
    if "around" in batch:
        out["around"] = batch["around"]
    return out
