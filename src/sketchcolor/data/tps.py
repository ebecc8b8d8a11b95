"""The spatial transform s(): a thin-plate-spline warp and the dense correspondence it implies.

The warp itself is kornia's TPS. What kornia does not give is the correspondence the training
needs: for every cell of the feature grid of the *sketch*, which cell of the *reference* shows the
same content. We compute it by inverting the warp numerically on a dense grid (nearest neighbour),
which is exact up to the grid spacing and marks content that was pushed out of view as invalid.

Coordinates are kornia's normalised ``grid_sample`` frame with ``align_corners=False``, ``(x, y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_tps_transform, warp_points_tps
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class TPSParams:
    """Control points: content at ``src[k]`` in the target moves to ``dst[k]``; then the whole is
    mirrored and turned about the center into the reference.

    ``src``, ``dst``: ``[K, 2]`` normalised (x, y). ``turn``: ``[2, 2]`` with ``q @ turn`` the point
    of the TPS's frame that reference point ``q`` (a row) shows, or None for none (the paper's
    s()). Composed outside the TPS because a TPS whose ``dst`` is turned is not the TPS turned:
    its kernels sit on the unturned ``src``, and a turn of 25-30 degrees folds a fifth to
    half of the image (its local Jacobian changes sign)."""

    src: torch.Tensor
    dst: torch.Tensor
    turn: torch.Tensor | None = None

    def solve(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Kernel centers ``[1, K, 2]``, kernel weights ``[1, K, 2]``, affine ``[1, 3, 2]`` of the map
        reference position -> target position (the direction ``grid_sample`` needs)."""
        src, dst = self.src[None], self.dst[None]
        kernel_w, affine_w = get_tps_transform(dst, src)
        return src, kernel_w, affine_w


def sample_tps(gen: torch.Generator, grid: int, scale: float, mirror: float = 0.0, rotation: float = 0.0) -> TPSParams:
    """A ``grid x grid`` lattice over the image, each point moved by up to ``scale`` per axis; then,
    with probability ``mirror``, the whole mirrored left to right, and turned about the center by
    an angle drawn uniformly within ``rotation`` degrees either way (``TPSParams.turn``). The turn
    is in the normalised frame: a true rotation for square images (every recipe's). Nothing more
    is drawn from ``gen`` when both are 0, so such streams are those of the plain TPS."""
    lin = torch.linspace(-1.0, 1.0, grid)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    src = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    offsets = (torch.rand(src.shape, generator=gen) * 2.0 - 1.0) * scale
    if mirror <= 0.0 and rotation <= 0.0:
        return TPSParams(src=src, dst=src + offsets)
    flip, spin = torch.rand(2, generator=gen).tolist()
    sign = -1.0 if flip < mirror else 1.0
    angle = math.radians((spin * 2.0 - 1.0) * rotation)
    c, s = math.cos(angle), math.sin(angle)
    # the reference is the warped image mirrored (x -> sign x), then turned by angle (x, y) ->
    # (x c - y s, x s + y c); so reference point q shows the warped image's point q R F (rows; R
    # the turn's matrix [[c, -s], [s, c]], F = diag(sign, 1))
    turn = torch.tensor([[c * sign, -s], [s * sign, c]])
    return TPSParams(src=src, dst=src + offsets, turn=turn)


def identity_tps(grid: int = 3) -> TPSParams:
    """A TPS with zero displacement."""
    lin = torch.linspace(-1.0, 1.0, grid)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    src = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return TPSParams(src=src, dst=src.clone())


def warp_positions(params: TPSParams, h: int, w: int) -> torch.Tensor:
    """``[h * w, 2]``: for each pixel center of an ``h x w`` reference (row-major, normalised
    (x, y), :func:`cell_centers`), the target position whose content it shows. The same points
    serve the image warp (:func:`apply_tps`, the sampling grid of kornia's ``warp_image_tps``) and,
    when the probe grid has the image's size, the correspondence (:func:`tps_correspondence`):
    :func:`sketchcolor.data.pairs.make_triplet` computes them once for both (the point warp is
    the largest stage of a triplet, ``bench/triplet_time.py``)."""
    centers, kernel_w, affine_w = params.solve()
    points = cell_centers(h, w)
    if params.turn is not None:
        points = points @ params.turn
    return warp_points_tps(points[None], centers, kernel_w, affine_w)[0]


def warp_positions_batch(src: torch.Tensor, dst: torch.Tensor, turn: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """:func:`warp_positions` of a batch at once, on the tensors' device: control points ``src``,
    ``dst`` ``[B, K, 2]`` and ``turn`` ``[B, 2, 2]`` (the identity where a draw has none) ->
    ``[B, h * w, 2]``. kornia solves the B splines as one batched system."""
    kernel_w, affine_w = get_tps_transform(dst, src)
    points = cell_centers(h, w).to(src.device, src.dtype).expand(src.shape[0], -1, -1)
    return warp_points_tps(torch.bmm(points, turn), src, kernel_w, affine_w)


def apply_tps(image: torch.Tensor, params: TPSParams, fill: float = 1.0,
              positions: torch.Tensor | None = None) -> torch.Tensor:
    """Warp ``image`` ``[C, H, W]`` in [-1, 1]; areas with no source are ``fill`` (white paper).
    ``positions``: :func:`warp_positions` of ``params`` at the image's size, where the caller has
    them. kornia's ``warp_image_tps`` in two public steps (its point warp on the pixel centers,
    then ``grid_sample``, bilinear, ``align_corners=False``), so that the points can be shared."""
    h, w = image.shape[-2:]
    if positions is None:
        positions = warp_positions(params, h, w)
    assert positions.shape == (h * w, 2), (tuple(positions.shape), (h, w))
    return sample_at(image[None], positions[None], fill)[0]


def sample_at(images: torch.Tensor, positions: torch.Tensor, fill: float = 1.0) -> torch.Tensor:
    """``images [B, C, H, W]`` sampled at ``positions [B, H * W, 2]`` (normalised (x, y), one per
    output pixel, row-major; bilinear, ``align_corners=False``); ``fill`` where a position falls
    outside. The image warp of :func:`apply_tps` and of the batch-wise build
    (:mod:`sketchcolor.data.device_triplets`)."""
    n, _, h, w = images.shape
    # grid_sample pads with zeros; shifting by ``fill`` first makes the padding come out as ``fill``.
    warped = F.grid_sample(images - fill, positions.view(n, h, w, 2).to(images.dtype), mode="bilinear",
                           padding_mode="zeros", align_corners=False)
    return warped + fill


def cell_centers(h: int, w: int) -> torch.Tensor:
    """Normalised (x, y) centers of an ``h x w`` grid of cells, row-major: ``[h * w, 2]``."""
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


# Probes per cell side of the correspondence's inversion: the feature stride of every recipe, so
# that at the trained size the probes are the image's pixel centers (see warp_positions).
PROBE_DENSITY = 8
# Bytes of one block of :func:`correspondence_batch`'s "cells" and "all" searches (about).
SEARCH_CHUNK_BYTES = 1 << 28


def tps_correspondence(params: TPSParams, h: int, w: int, tolerance: float = 0.75, density: int = PROBE_DENSITY,
                       positions: torch.Tensor | None = None) -> torch.Tensor:
    """For each sketch cell of an ``h x w`` grid, the reference cell showing the same content.

    Returns a long tensor ``[h * w]`` of row-major reference cell indices, ``-1`` where the
    content of that sketch cell is not visible in the reference (warped out of view), judged by
    ``tolerance`` in cells. ``density`` samples per cell side set the accuracy of the inversion.
    ``positions``: :func:`warp_positions` of ``params`` at ``(h * density, w * density)``, where
    the caller has them (the image warp's, when the image has that size).
    """
    if positions is None:
        positions = warp_positions(params, h * density, w * density)  # dense reference positions -> target
    assert positions.shape == (h * density * w * density, 2), (tuple(positions.shape), (h, w, density))
    # Nearest landed probe per sketch cell with scipy's k-d tree rather than the full
    # [hw, (h d)(w d)] distance matrix, whose matmul form rounds (3 cells in 51,200 differed):
    # exact float64 distances. Not faster inside the triplet pipeline (bench/triplet_time.py,
    # when this function still warped its own probes: ~10 ms either way), though it is in a tight loop.
    return correspondence_batch(positions[None], h, w, tolerance, density, search="tree")[0]


def _nearest_in_tree(points: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``[Q]`` and index ``[Q]`` (long) of the nearest of ``points [N, 2]`` to each of
    ``queries [Q, 2]`` (float64, on the CPU), by scipy's k-d tree."""
    dist, nearest = cKDTree(points.cpu().numpy()).query(queries.cpu().numpy())
    return torch.from_numpy(dist), torch.from_numpy(nearest).long()


def correspondence_batch(positions: torch.Tensor, h: int, w: int, tolerance: float = 0.75,
                         density: int = PROBE_DENSITY, search: str | None = None,
                         chunk_bytes: int = SEARCH_CHUNK_BYTES) -> torch.Tensor:
    """:func:`tps_correspondence` of a batch on its device: ``positions`` ``[B, (h d)(w d), 2]``
    (:func:`warp_positions_batch` at the probe grid) -> ``[B, h * w]`` long, ``-1`` where not
    visible. Distances in float64 as scipy's k-d tree computes them (``dx^2 + dy^2``), so the
    three ``search`` ways give the k-d tree's answer but where two probes lie exactly equally near:

    - ``"cells"`` (the default on a GPU, where a k-d tree does not run): only a sketch cell's nearest probe *within
      the tolerance* counts, and such a probe lies in a window of ``floor(2 tolerance) + 2`` cells
      a side around where it landed, so each probe is paired with those cells alone (9 pairs at
      the default 0.75, against all ``h w`` cells), the nearest kept per cell by a scatter-min;
      in blocks of examples of about ``chunk_bytes``;
    - ``"all"``: every probe against every cell (broadcast, in blocks);
    - ``"tree"`` (the default on a CPU, where it is 3-4x faster than ``"cells"`` with one
      thread: 6.3 against 19.9 ms a triplet at 128 px): each example's k-d tree, as
      :func:`tps_correspondence`.

    MPS, which has no float64, is served by the CPU."""
    n = positions.shape[1]
    assert positions.dim() == 3 and n == h * density * w * density, (tuple(positions.shape), (h, w, density))
    if search is None:
        search = "tree" if positions.device.type in ("cpu", "mps") else "cells"
    if search not in ("cells", "all", "tree"):
        raise ValueError(f"search must be 'cells', 'all' or 'tree', got {search!r}")
    if positions.device.type == "mps":
        return correspondence_batch(positions.cpu(), h, w, tolerance, density, search, chunk_bytes).to(positions.device)
    scale = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64, device=positions.device)
    landed = positions.double() * scale
    landed = torch.where(torch.isfinite(landed).all(-1, keepdim=True), landed, torch.full_like(landed, 1e9))
    queries = cell_centers(h, w).to(positions.device, torch.float64) * scale
    side = math.floor(2 * tolerance) + 2
    # a tolerance so large that the windows hold every cell, or one example's pairs overflow a
    # block: every probe against every cell, in blocks of cells too
    if search == "cells" and side * side < h * w and CELL_PAIR_BYTES * n * side * side <= chunk_bytes:
        near, nearest = _nearest_in_window(landed, queries, h, w, tolerance, side, chunk_bytes)
    elif search == "tree":
        found = [_nearest_in_tree(one, queries) for one in landed]
        near = torch.stack([d for d, _ in found]).to(landed.device)
        nearest = torch.stack([i for _, i in found]).to(landed.device)
    else:
        near, nearest = _nearest_of_all(landed, queries, chunk_bytes)
    py, px = nearest // (w * density), nearest % (w * density)
    ref_cell = (py // density) * w + (px // density)
    return torch.where(near > tolerance, torch.full_like(ref_cell, -1), ref_cell)


# Bytes a (probe, window cell) pair of the "cells" search holds at once: its cell center (16),
# cell index (8), in-window flag (1) and three float64 temporaries of the squared distance.
CELL_PAIR_BYTES = 50


def _nearest_in_window(points: torch.Tensor, queries: torch.Tensor, h: int, w: int, tolerance: float, side: int,
                       chunk_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of the ``h x w`` cell centers ``queries [h w, 2]``, the distance ``[B, h w]``
    and index ``[B, h w]`` of the nearest of ``points [B, N, 2]`` (float64, in cell units) among
    those within ``tolerance`` of it (``inf`` and ``N`` where none is): each point is paired with
    the ``side x side`` cells around it, which hold every cell center within the tolerance."""
    b, n, _ = points.shape
    offsets = torch.arange(side, device=points.device)
    probe = torch.arange(n, device=points.device)[:, None, None]  # [N, 1, 1]
    best, index = [], []
    for part in points.split(max(1, chunk_bytes // (CELL_PAIR_BYTES * n * side * side))):
        # the first column (row) whose center may lie within the tolerance: column j's center is
        # at j + 0.5 - w / 2 in these units
        # (clamped before the cast: a probe thrown far out of the frame stays out of every window)
        jx = torch.floor(part[..., 0] + w / 2 - 0.5 - tolerance).clamp(-side, w).long()[..., None] + offsets
        jy = torch.floor(part[..., 1] + h / 2 - 0.5 - tolerance).clamp(-side, h).long()[..., None] + offsets
        jx, jy = jx[:, :, None, :], jy[:, :, :, None]  # [e, N, 1, side], [e, N, side, 1]
        inside = (jx >= 0) & (jx < w) & (jy >= 0) & (jy < h)  # [e, N, side, side]
        cell = torch.where(inside, jy * w + jx, 0)
        q = queries[cell]  # [e, N, side, side, 2]
        d2 = (q[..., 0] - part[:, :, None, None, 0]).square() + (q[..., 1] - part[:, :, None, None, 1]).square()
        d2 = torch.where(inside, d2, torch.inf).flatten(1)
        cell, inside = cell.flatten(1), inside.flatten(1)
        low = torch.full((part.shape[0], h * w), torch.inf, dtype=d2.dtype, device=d2.device)
        low = low.scatter_reduce(1, cell, d2, "amin")
        # of the probes at that least distance, the first (as a scan of all of them would keep)
        first = torch.where(inside & (d2 == low.gather(1, cell)), probe.expand(-1, side, side).flatten()[None], n)
        which = torch.full((part.shape[0], h * w), n, dtype=cell.dtype, device=cell.device)
        which = which.scatter_reduce(1, cell, first, "amin")
        best.append(low)
        index.append(which.clamp(max=n - 1))
    return torch.cat(best).sqrt(), torch.cat(index)


def _nearest_of_all(points: torch.Tensor, queries: torch.Tensor, chunk_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``[B, Q]`` and index ``[B, Q]`` of the nearest of ``points [B, N, 2]`` to each of
    ``queries [Q, 2]`` (float64, any device), over blocks of examples x queries of at most about
    ``chunk_bytes`` (three ``[e, q, N]`` float64 tensors: the two squared differences and their
    sum). Plain broadcasting rather than ``torch.cdist``, whose exact (non-matmul) CUDA kernel
    spends a thread block on every distance."""
    b, n, _ = points.shape
    row = 3 * n * 8  # bytes per (example, query) row of a block
    q_step = max(1, min(queries.shape[0], chunk_bytes // row))
    e_step = max(1, chunk_bytes // (q_step * row))
    best, index = [], []
    for part in points.split(e_step):
        px, py = part[:, None, :, 0], part[:, None, :, 1]  # [e, 1, N]
        d_part, i_part = [], []
        for q in queries.split(q_step):
            d2 = (q[None, :, None, 0] - px).square() + (q[None, :, None, 1] - py).square()  # [e, q, N]
            d, i = d2.min(dim=-1)
            d_part.append(d)
            i_part.append(i)
        best.append(torch.cat(d_part, dim=1))
        index.append(torch.cat(i_part, dim=1))
    return torch.cat(best).sqrt(), torch.cat(index)
