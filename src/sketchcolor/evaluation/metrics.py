"""Metrics that need no downloaded network, a VGG feature distance, and correspondence accuracy.

Images are uint8 numpy arrays: outputs, targets and references RGB ``[H, W, 3]``, sketches gray
``[H, W]`` (dark lines on white paper). Each function returns a plain float (or a small
dataclass) so that results drop straight into a JSON file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import cv2
import numpy as np
import torch
from skimage.color import rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sketchcolor.data.io import to_gray
# one definition of a line pixel (and of the paper around a drawing) for rendering and scoring
from sketchcolor.inference.render import LINE_THRESHOLD, line_mask, outside_labels, segment_regions
# correspondence accuracy is defined beside the training validation that logs it; re-exported for the tables
from sketchcolor.training.validation import CorrespondenceScores, correspondence_accuracy, neighbourhood  # noqa: F401



def _check_rgb(img: np.ndarray, name: str) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be uint8 [H, W, 3], got {img.dtype} {img.shape}")


def _check_pair(output: np.ndarray, other: np.ndarray, other_name: str) -> None:
    _check_rgb(output, "output")
    _check_rgb(other, other_name)
    if output.shape != other.shape:
        raise ValueError(f"output {output.shape} and {other_name} {other.shape} differ in size")


def _check_sketch(sketch: np.ndarray, shape: tuple[int, ...]) -> None:
    if sketch.dtype != np.uint8 or sketch.ndim != 2 or sketch.shape != shape[:2]:
        raise ValueError(f"sketch must be uint8 [H, W] matching {shape[:2]}, got {sketch.dtype} {sketch.shape}")


# ---------------------------------------------------------------------------------------------
# Fidelity to the target (self-reference setting)


def psnr(output: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of uint8 RGB ``output`` against ``target`` (both ``[H, W, 3]``); ``inf`` when equal."""
    _check_pair(output, target, "target")
    if np.array_equal(output, target):
        return float("inf")
    return float(peak_signal_noise_ratio(target, output, data_range=255))


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """SSIM of uint8 RGB ``[H, W, 3]`` images (mean over channels), with Wang et al.'s settings:
    11 x 11 Gaussian window, sigma 1.5, population covariances. Needs sides of at least 11 px."""
    _check_pair(output, target, "target")
    return float(structural_similarity(
        target, output, data_range=255, channel_axis=2,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    ))


# ---------------------------------------------------------------------------------------------
# Reference-color fidelity (cross-reference setting)


def painted_mask(sketch: np.ndarray, threshold: int = LINE_THRESHOLD) -> np.ndarray:
    """bool ``[H, W]``: True where the colorizer paints (every pixel not on a line)."""
    return ~line_mask(sketch, threshold)


def _directions(n: int, seed: int) -> np.ndarray:
    """``n`` seeded random unit vectors in 3-D, ``[n, 3]``."""
    v = np.random.default_rng(seed).standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, n_directions: int = 64, n_quantiles: int = 1000,
                       seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between point clouds ``x [n, 3]`` and ``y [m, 3]``.

    Both are projected on ``n_directions`` seeded random unit directions; each 1-D W1 is the
    mean absolute difference of the two quantile functions on ``n_quantiles`` evenly spaced
    levels. Hand-written (a dozen lines): POT has it, but not worth a dependency; scipy's exact
    1-D ``wasserstein_distance`` is one Python call per direction and several times slower.
    For a pure shift ``d`` of one cloud the value is ``|d|`` times the mean ``|cos|`` between
    ``d`` and the directions (about ``|d| / 2``).
    """
    assert x.ndim == 2 and y.ndim == 2 and x.shape[1] == y.shape[1] == 3, (x.shape, y.shape)
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    dirs = _directions(n_directions, seed)
    return float(np.abs(_projected_quantiles(x, dirs, n_quantiles) - _projected_quantiles(y, dirs, n_quantiles)).mean())


def _projected_quantiles(points: np.ndarray, dirs: np.ndarray, n_quantiles: int) -> np.ndarray:
    """``[K, Q]``: numpy's "inverted_cdf" quantiles of ``points [n, 3]`` projected on ``dirs [K, 3]``
    at ``Q`` evenly spaced levels."""
    levels = (np.arange(n_quantiles) + 0.5) / n_quantiles
    proj = np.sort(dirs @ points.T, axis=1)  # [K, n], sorting rows is ~10x faster than np.quantile
    idx = np.clip(np.ceil(levels * proj.shape[1]).astype(np.int64) - 1, 0, proj.shape[1] - 1)
    return proj[:, idx]


def color_distance(
    output: np.ndarray,
    reference: np.ndarray,
    sketch: np.ndarray | None = None,
    reference_mask: np.ndarray | None = None,
    n_directions: int = 64,
    seed: int = 0,
) -> float:
    """Reference-color fidelity: sliced Wasserstein-1 distance (CIELAB units, lower is better)
    between the Lab colors of ``output [H, W, 3]`` in its painted area (pixels not on the lines
    of ``sketch [H, W]``; all pixels when ``sketch`` is None) and those of ``reference
    [H', W', 3]`` (all pixels, or those where ``reference_mask [H', W']`` is True).

    It compares color *distributions*, not positions, so it is meaningful for a reference that
    shows another picture. 0 for the same colors in any arrangement.
    """
    _check_rgb(output, "output")
    _check_rgb(reference, "reference")
    lab_out = rgb2lab(output).reshape(-1, 3)
    lab_ref = rgb2lab(reference).reshape(-1, 3)
    if sketch is not None:
        _check_sketch(sketch, output.shape)
        lab_out = lab_out[painted_mask(sketch).reshape(-1)]
    if reference_mask is not None:
        lab_ref = lab_ref[np.asarray(reference_mask, bool).reshape(-1)]
    return sliced_wasserstein(lab_out, lab_ref, n_directions=n_directions, seed=seed)


def white_paper_floor(reference: np.ndarray, paper_share: float, n_directions: int = 64, n_quantiles: int = 1000,
                      seed: int = 0) -> float:
    """The lowest :func:`color_distance` against ``reference [H, W, 3]`` that any output can reach
    whose painted area is white (255, 255, 255) on ``paper_share`` (0..1) of it, whatever the rest.

    A lower bound, not an estimate: in each projection the white share fills a block of at least
    ``floor(paper_share * Q)`` quantile levels at white's projection, and the cheapest such block
    is the window of the reference's own quantiles nearest to it (the other levels could match the
    reference exactly); one output must serve every direction at once, so the mean over the
    directions of these per-direction minima can only be lower than what an output reaches.
    Hand-written: it is the metric's own quantile arithmetic, which no library exposes.
    """
    _check_rgb(reference, "reference")
    if not 0.0 <= paper_share <= 1.0:
        raise ValueError(f"paper_share must lie in [0, 1], got {paper_share}")
    dirs = _directions(n_directions, seed)
    q = _projected_quantiles(rgb2lab(reference).reshape(-1, 3), dirs, n_quantiles)  # [K, Q]
    white = dirs @ rgb2lab(np.full((1, 1, 3), 255, np.uint8)).reshape(3)  # [K]
    k = int(np.floor(paper_share * n_quantiles + 1e-9))
    if k == 0:
        return 0.0
    cost = np.cumsum(np.pad(np.abs(q - white[:, None]), ((0, 0), (1, 0))), axis=1)  # [K, Q + 1]
    window = cost[:, k:] - cost[:, : n_quantiles - k + 1]  # [K, Q - k + 1]: each block of k levels
    return float(window.min(axis=1).mean() / n_quantiles)


# Paper: near-white pixels (CIELAB L > 90, chroma < 6) in the region around a drawing.
PAPER_L, PAPER_CHROMA = 90.0, 6.0


def around_drawing(sketch: np.ndarray) -> np.ndarray:
    """bool ``[H, W]``: the region(s) around the drawing, as the ``regions`` rendering finds them
    (the line-art region holding most of the picture's frame; :func:`outside_labels`)."""
    labels = segment_regions(sketch)
    return np.isin(labels, outside_labels(labels, sketch=sketch))


def drawing_mask(picture: np.ndarray, sketch: np.ndarray, paper: np.ndarray | None = None) -> np.ndarray:
    """bool ``[H, W]``: a picture's own drawing: off the lines of its ``sketch`` and not its
    paper (the near-white pixels of ``picture [H, W, 3]`` in the region around the drawing). A
    full-frame picture (a flag) keeps its colors. ``paper``: :func:`paper_around_drawing` of the
    same picture where a caller already has it (it costs a segmentation)."""
    if paper is None:
        paper = paper_around_drawing(picture, sketch)
    return painted_mask(sketch) & ~paper


def drawing_color_distance(output: np.ndarray, picture: np.ndarray, sketch: np.ndarray, reference: np.ndarray,
                           reference_sketch: np.ndarray, n_directions: int = 64, seed: int = 0) -> float:
    """:func:`color_distance` between the drawings alone: ``output`` over the drawing of the
    picture it colorizes (``picture``, the true colors of ``sketch``: :func:`drawing_mask`), against
    the reference's own drawing (``drawing_mask(reference, reference_sketch)``). The paper is left
    out on both sides because two drawings cover different shares of theirs: with it, a method
    scores better for painting the paper around the drawing in the reference's colors (patch
    copying does), which no artist wants; what a method paints on that paper is not scored here.
    0 for a picture scored against itself; NaN when either side has no such pixel."""
    _check_rgb(output, "output")
    _check_rgb(picture, "picture")
    _check_rgb(reference, "reference")
    _check_sketch(sketch, output.shape)
    _check_sketch(sketch, picture.shape)
    _check_sketch(reference_sketch, reference.shape)
    return masked_color_distance(output, drawing_mask(picture, sketch), reference, drawing_mask(reference, reference_sketch),
                                 n_directions=n_directions, seed=seed)


def masked_color_distance(output: np.ndarray, keep: np.ndarray, reference: np.ndarray, ref_keep: np.ndarray,
                          n_directions: int = 64, seed: int = 0) -> float:
    """:func:`drawing_color_distance` with its masks given (bool ``keep [H, W]`` over ``output``,
    ``ref_keep [H', W']`` over ``reference``), for callers that score several outputs of one
    picture: the masks' segmentation costs more than the distance. NaN when either mask is empty."""
    if not keep.any() or not ref_keep.any():
        return float("nan")
    return sliced_wasserstein(rgb2lab(output)[keep], rgb2lab(reference)[ref_keep], n_directions=n_directions, seed=seed)


# A picture enters :func:`paper_painted` only with at least this many paper pixels around its drawing.
MIN_PAPER_PIXELS = 100


def is_paper(picture: np.ndarray) -> np.ndarray:
    """bool ``[H, W]``: the near-white pixels of ``picture [H, W, 3]`` (L > 90, chroma < 6)."""
    lab = rgb2lab(picture)
    return (lab[..., 0] > PAPER_L) & (np.hypot(lab[..., 1], lab[..., 2]) < PAPER_CHROMA)


def paper_around_drawing(picture: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """bool ``[H, W]``: the paper around the drawing of ``sketch [H, W]``: the near-white pixels of
    its true colors ``picture [H, W, 3]`` in the region around it (:func:`around_drawing`)."""
    _check_rgb(picture, "picture")
    _check_sketch(sketch, picture.shape)
    return around_drawing(sketch) & is_paper(picture)


def paper_painted(output: np.ndarray, paper: np.ndarray) -> float:
    """Share (0..1) of ``paper`` (bool ``[H, W]``, from :func:`paper_around_drawing`, computed once
    per picture: the segmentation costs more than the rest) that ``output [H, W, 3]`` paints, i.e.
    leaves darker than L 90 or more colored than chroma 6: paint spilled on the paper. NaN when the
    paper has fewer than :data:`MIN_PAPER_PIXELS` pixels (a full-frame picture)."""
    _check_rgb(output, "output")
    if paper.shape != output.shape[:2]:
        raise ValueError(f"paper mask has shape {paper.shape}, output {output.shape[:2]}")
    if paper.sum() < MIN_PAPER_PIXELS:
        return float("nan")
    return float((paper & ~is_paper(output)).sum() / paper.sum())


# ---------------------------------------------------------------------------------------------
# Line preservation


def line_darkness(rgb: np.ndarray, size: int = 7) -> np.ndarray:
    """How much darker each pixel is than its surroundings: the black top-hat (closing minus
    image) of the luminance with a ``size x size`` square, uint8 ``[H, W]``. Thin dark lines
    score their contrast; flat paint and edges between two flat colors score 0."""
    lum = to_gray(rgb)
    return cv2.morphologyEx(lum, cv2.MORPH_BLACKHAT, np.ones((size, size), np.uint8))


def _share_of_lines(output: np.ndarray, sketch: np.ndarray, threshold: int,
                    kept: Callable[[], np.ndarray]) -> float:
    """Share of the sketch's line pixels where ``kept()`` (bool ``[H, W]``, computed only when
    the sketch has lines) is True; ``nan`` when it has none."""
    _check_rgb(output, "output")
    _check_sketch(sketch, output.shape)
    lines = line_mask(sketch, threshold)
    if not lines.any():
        return float("nan")
    return float(kept()[lines].mean())


def lines_kept(output: np.ndarray, sketch: np.ndarray, threshold: int = LINE_THRESHOLD) -> float:
    """Share of the sketch's line pixels (darker than ``threshold``) that are still dark in
    ``output``: luminance below the same ``threshold``. A rendering that lays the drawing's lines
    on top keeps them all (1.0); a network that paints them over at low resolution turns thin
    lines gray. Absolute, so a line on very dark paint counts as kept even where it cannot be
    seen: :func:`line_preservation` (contrast against the paint around it) measures that.
    ``nan`` when the sketch has no lines."""
    return _share_of_lines(output, sketch, threshold, lambda: to_gray(output) < threshold)


def line_preservation(output: np.ndarray, sketch: np.ndarray, contrast: int = 24, size: int = 7,
                      threshold: int = LINE_THRESHOLD) -> float:
    """Share of the sketch's line pixels that are still lines in ``output``: at least
    ``contrast`` luminance levels darker than the paint around them (black top-hat, see
    :func:`line_darkness`). Relative, so a line on dark paint is judged against that paint.
    ``nan`` when the sketch has no lines."""
    return _share_of_lines(output, sketch, threshold, lambda: line_darkness(output, size) >= contrast)


def edge_correlation(output: np.ndarray, sketch: np.ndarray, size: int = 7) -> float:
    """Pearson correlation between the sketch's ink (``255 - sketch``) and the output's line
    darkness (:func:`line_darkness`): threshold-free line preservation in [-1, 1]; 0 when either
    is constant (e.g. all lines erased)."""
    _check_rgb(output, "output")
    _check_sketch(sketch, output.shape)
    ink = 255.0 - sketch.astype(np.float64).reshape(-1)
    dark = line_darkness(output, size).astype(np.float64).reshape(-1)
    if ink.std() == 0 or dark.std() == 0:
        return 0.0
    return float(np.corrcoef(ink, dark)[0, 1])


# ---------------------------------------------------------------------------------------------
# Feature distance on a VGG trunk (LPIPS-style, but not LPIPS: no learned layer weights)


def _unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each position's channel vector of ``[B, C, H, W]`` to unit length (as LPIPS does)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


@torch.no_grad()
def vgg_feature_distance(
    features: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    output: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """LPIPS-style distance on a frozen feature extractor, per image: ``[B]``.

    ``features`` maps ``[B, 3, H, W]`` in [-1, 1] to named activations ``{name: [B, C, h, w]}``
    (e.g. :class:`sketchcolor.models.vgg.VGGFeatures`). For each layer the channel vectors
    are unit-normalised, the squared differences summed over channels and averaged over
    positions; layers are summed. This is LPIPS's unweighted baseline form (all linear weights
    1) on whatever trunk is given, so it is reported under this name, not as LPIPS.
    """
    assert output.shape == target.shape and output.dim() == 4 and output.shape[1] == 3, (
        tuple(output.shape), tuple(target.shape))
    fo, ft = features(output), features(target)
    total = torch.zeros(output.shape[0], device=output.device)
    for name, a in fo.items():
        total = total + (_unit_channels(a) - _unit_channels(ft[name])).pow(2).sum(dim=1).mean(dim=(1, 2))
    return total

