"""Full-resolution rendering: the network's low-resolution paint becomes flat, even color under the
drawing's own crisp lines, as an artist fills line art.

- ``regions``: segment the line art into regions at full resolution (lines thickened by a small
  disc first, so that gaps narrower than the disc still close: a trapped-ball fill as anime paint
  tools do it, with OpenCV's connected components), give every region one color (the median in
  Lab of the prediction over it), let the paper stay white, and multiply the original lines on
  top. Pixels under the thickened lines join their nearest region (scipy's distance transform).
  Shapes whose outline has wider gaps are caught by larger balls, grown back by a watershed on
  the distance to the lines so that they end across the gap (:func:`trap_open_shapes`; strips of
  paper left between painted shapes join them at the end, :func:`merge_paper_slivers`), and a
  shape left open on a whole side (a shirt cut off below the shoulders, arms running off the
  top) is closed by joining its two line ends (:func:`close_line_ends`). A region's color is
  taken away from its lines, where the network's paint is not darkened by them.
- ``guided``: for open lines (a photo's extracted edges) where regions mean nothing: the
  prediction upsampled with kornia's joint bilateral filter guided by the sketch, lines on top.
- ``none``: the prediction as it is, resized to the drawing's size.

Optional palette snapping pulls each region's color toward the nearest color of the reference's
palette (k-means in Lab, OpenCV).

All functions take and return numpy arrays: sketches uint8 ``[H, W]`` (dark lines on white),
colors uint8 ``[H, W, 3]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from kornia.filters import joint_bilateral_blur
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.color import lab2rgb, rgb2lab
from skimage.draw import line as draw_line
from skimage.morphology import skeletonize
from skimage.segmentation import watershed

Fill = Literal["regions", "guided", "none"]
FILLS: tuple[str, ...] = ("regions", "guided", "none")

LINE_THRESHOLD = 128  # sketch pixels darker than this are lines
# Trapped-ball passes: ball radii as multiples of the gap radius (8, 16 and 32 px on a 256 px
# drawing). Each pass encloses shapes whose outline has wider gaps (a circle open on one side, a
# puzzle piece drawn in broken strokes); a space the ball fills only by accident takes the
# network's color there, which is paper white when the network left it unpainted.
TRAP_SCALES: tuple[int, ...] = (4, 8, 16)
# Line ends joined for the segmentation (:func:`close_line_ends`): the longest join, as a share of
# the drawing's longer side, how many nearest ends each end considers, and the most loose ends a
# drawing may have (an extracted sketch of a photo has thousands: no shapes to close there).
CLOSE_MAX_LENGTH, CLOSE_NEIGHBOURS, CLOSE_MAX_ENDS = 0.6, 8, 400
# Two ends are joined only where their strokes run the same way (cosine of their directions at
# least CLOSE_PARALLEL) and the join crosses them (|cosine| with each at most CLOSE_ACROSS).
CLOSE_PARALLEL, CLOSE_ACROSS = 0.7, 0.5
# A region's color is its median over its pixels off the lines, and of those over the ones farther
# than this many gap radii from the lines (the network paints a dark halo along its lines), where
# they make up CORE_MIN_SHARE of its pixels off the lines.
CORE_RADII, CORE_MIN_SHARE = 2.0, 0.2
# Region colors are medians over a regular grid of at most about this many pixels (see region_colors).
COLOR_SAMPLE_PIXELS = 1_000_000
# ... and over the pixels within this many ΔE of the region's dominant color (see dominant_colors).
DOMINANT_RADIUS = 25.0
# A pale part of the paint on the paper (median lightness above HALO_LIGHTNESS) becomes a shape only
# with HALO_OUTLINE of its rim on the lines, not the usual 0.4: the network paints a pale halo
# around closed silhouettes (a castle, a notebook) whose inner rim alone lies on lines. On the val
# split (every 2nd picture, cross references, shipped weights) it took the paper painted from 2.9%
# to 2.1% for a drawing color distance of 14.908 against 14.875 (README "Halos in the
# rendering").
HALO_LIGHTNESS, HALO_OUTLINE = 70.0, 0.6
# Paper: a region that touches the border and whose color is this close to white is painted white.
PAPER_LIGHTNESS, PAPER_CHROMA = 85.0, 12.0


def line_mask(sketch: np.ndarray, threshold: int = LINE_THRESHOLD) -> np.ndarray:
    """bool ``[H, W]``: the dark line pixels of a sketch (darker than ``threshold``)."""
    return sketch < threshold


def frame_mask(shape: tuple[int, ...]) -> np.ndarray:
    """bool ``[H, W]``: the picture's outermost pixels."""
    frame = np.ones(shape[:2], bool)
    frame[1:-1, 1:-1] = False
    return frame


def distance_to_lines(sketch: np.ndarray) -> np.ndarray:
    """float32 ``[H, W]``: each pixel's distance to the nearest line pixel of ``sketch`` (OpenCV's
    exact Euclidean transform; 0 on the lines, very large everywhere when there are none)."""
    return cv2.distanceTransform((~line_mask(sketch)).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def border_labels(labels: np.ndarray) -> np.ndarray:
    """The labels that touch the picture's border (the paper and shapes open toward the frame)."""
    return np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))


def outside_labels(labels: np.ndarray, min_frame: float = 0.25, sketch: np.ndarray | None = None) -> np.ndarray:
    """The labels around the drawing: the one with most of the picture's frame (its outermost
    pixels) and any other covering at least ``min_frame`` of it. A shape the frame cuts (shoulders
    at the bottom edge) touches only a little of the frame and is not among them.

    With ``sketch``, frame pixels within the gap radius of a line are not counted: they lay under
    the thickened lines and joined their nearest region, so a drawing whose own outline runs along
    the frame (a flag's rectangle) would otherwise make its inside look like the paper. Where
    almost the whole frame is such pixels, all are counted."""
    edge = frame_mask(labels.shape)
    if sketch is not None:
        near = distance_to_lines(sketch) <= gap_radius(sketch.shape) + 0.5
        if (edge & ~near).sum() >= 0.1 * edge.sum():
            edge &= ~near
    counts = np.bincount(labels[edge])
    # the share is of the whole frame: leaving pixels out must not make a shape cut by the frame
    # (shoulders at the bottom edge) hold a larger share of it
    total = 2 * (labels.shape[0] + labels.shape[1]) - 4 if min(labels.shape) > 1 else labels.size
    return np.union1d(np.nonzero(counts >= min_frame * total)[0], [counts.argmax()])


def gap_radius(shape: tuple[int, int]) -> int:
    """Radius (px) of the disc that closes gaps in the lines: about 1% of the drawing's size."""
    return max(1, round(0.006 * max(shape)))


def segment_regions(sketch: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Regions of line art ``[H, W]`` uint8 -> labels int32 ``[H, W]``, 1..N, every pixel labeled.

    Lines are thickened by a disc of ``radius`` px before the connected components are taken, so
    gaps up to about ``2 * radius`` px do not let two regions leak into one; afterwards every pixel
    under the thickened lines takes the label of the nearest region."""
    radius = gap_radius(sketch.shape) if radius is None else radius
    lines = line_mask(sketch).astype(np.uint8)
    if radius > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        lines = cv2.dilate(lines, disc)
    n, labels = cv2.connectedComponents((1 - lines).astype(np.uint8), connectivity=4)
    if n <= 1:  # all lines: one region
        return np.ones(sketch.shape, np.int32)
    unlabeled = labels == 0
    if unlabeled.any():
        _, (iy, ix) = ndimage.distance_transform_edt(unlabeled, return_indices=True)
        labels = labels[iy, ix]
    return labels.astype(np.int32)


def region_colors(prediction: np.ndarray, labels: np.ndarray, sketch: np.ndarray | None = None) -> np.ndarray:
    """Each region's color in ``prediction`` ``[H, W, 3]`` uint8 -> Lab ``[N + 1, 3]`` (row i is
    label i; row 0 unused): the median Lab over its pixels within :data:`DOMINANT_RADIUS` ΔE of its
    dominant color (:func:`dominant_colors`), so that a region the network paints in several
    colors takes the main one instead of a mix of them.

    With ``sketch``, a region's median is taken over its pixels off the lines (the pixels under
    the lines join their nearest region, and the network paints them dark: a thin region is
    mostly line), and of those over the ones farther than :data:`CORE_RADII` gap radii from the
    lines where they make up :data:`CORE_MIN_SHARE` of them: the network also darkens its paint
    along the lines, which turned thin regions (a leg, a stripe) gray.

    On a picture of more than :data:`COLOR_SAMPLE_PIXELS` pixels the medians are taken over a
    regular grid of them (every region missing from the grid keeps all its pixels): the Lab
    conversion and the medians' sorting took most of a 2048 px render, and the prediction is the
    network's output upsampled from its own size, so its colors vary slowly."""
    n = int(labels.max())
    index = np.arange(1, n + 1)
    source = labels  # the pixels each region's median is taken over
    if sketch is not None:
        distance = distance_to_lines(sketch)

        def keep(source: np.ndarray, inside: np.ndarray, share: float) -> np.ndarray:
            """``source`` with each region cut down to its pixels in ``inside``, where those are at
            least ``share`` of it (a region made only of line pixels keeps them all)."""
            inner = np.where(inside, source, 0)
            area = np.bincount(source.ravel(), minlength=n + 1)
            inner_area = np.bincount(inner.ravel(), minlength=n + 1)
            use = (inner_area > 0) & (inner_area >= share * area)
            return np.where(use[source], inner, source)

        source = keep(source, distance > 0, 0.0)
        source = keep(source, distance > CORE_RADII * gap_radius(sketch.shape) + 1, CORE_MIN_SHARE)
    step = math.ceil(math.sqrt(source.size / COLOR_SAMPLE_PIXELS))
    picked = np.zeros(source.shape, bool)
    picked[::step, ::step] = True
    if step > 1:
        on_grid = np.bincount(source[picked], minlength=n + 1) > 0
        picked |= ~on_grid[source]  # a region the grid misses (a small one) keeps all its pixels
    lab = rgb2lab(prediction[picked].reshape(-1, 1, 3)).reshape(-1, 3)
    owner = source[picked]
    # the median of the pixels near each region's dominant color, not of all of them: a region the
    # network paints red, white and green would otherwise get a per-channel mix no one painted
    near = np.linalg.norm(lab - dominant_colors(lab, owner, n)[owner], axis=1) <= DOMINANT_RADIUS
    owner = np.where(near, owner, 0)
    out = np.zeros((n + 1, 3))
    for c in range(3):
        out[1:, c] = ndimage.median(lab[:, c], labels=owner, index=index)
    return np.nan_to_num(out)  # a label with no pixel left (split away) gets an undefined value; it paints nothing


def dominant_colors(lab: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Each region's most frequent color: Lab ``[N, 3]`` pixels owned by regions ``owner`` ``[N]``
    (0..n) -> Lab ``[n + 1, 3]``, the center of the region's fullest bin of a coarse Lab histogram
    (10 x 16 x 16 units, counts summed over the 3 x 3 x 3 neighbouring bins so a color on a bin
    edge is not split). Hand-written over sparse keys: a dense histogram per region would take
    2,560 counts for each of thousands of regions."""
    bins = np.stack([np.clip(lab[:, 0] // 10, 0, 9), np.clip((lab[:, 1] + 128) // 16, 0, 15),
                     np.clip((lab[:, 2] + 128) // 16, 0, 15)], axis=1).astype(np.int64)
    keys, counts = np.unique(owner.astype(np.int64) * 2560 + bins @ np.array([256, 16, 1]), return_counts=True)
    region, cell = keys // 2560, keys % 2560
    cl, ca, cb = cell // 256, cell // 16 % 16, cell % 16
    summed = np.zeros(len(keys))
    for dl in (-1, 0, 1):
        for da in (-1, 0, 1):
            for db in (-1, 0, 1):
                inside = (0 <= cl + dl) & (cl + dl < 10) & (0 <= ca + da) & (ca + da < 16) & (0 <= cb + db) & (cb + db < 16)
                other = keys + dl * 256 + da * 16 + db
                at = np.minimum(np.searchsorted(keys, other), len(keys) - 1)
                hit = inside & (keys[at] == other)
                summed[hit] += counts[at[hit]]
    order = np.lexsort((-summed, region))  # by region, fullest first
    first = order[np.r_[True, region[order][1:] != region[order][:-1]]]
    out = np.zeros((n + 1, 3))
    out[region[first]] = np.stack([cl[first] * 10 + 5.0, ca[first] * 16 - 120.0, cb[first] * 16 - 120.0], axis=1)
    return out


def reference_palette(reference: np.ndarray, k: int = 8, seed: int = 0) -> np.ndarray:
    """The reference's main colors: k-means in Lab over its non-paper pixels -> Lab ``[k', 3]``."""
    lab = rgb2lab(reference).reshape(-1, 3).astype(np.float32)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    ink = lab[~((lab[:, 0] > PAPER_LIGHTNESS) & (chroma < PAPER_CHROMA))]
    if len(ink) < k:
        return lab[:1] if len(ink) == 0 else ink
    if len(ink) > 20000:  # k-means on a fixed subsample: same palette, bounded time
        ink = ink[np.random.default_rng(seed).choice(len(ink), 20000, replace=False)]
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.1)
    _, _, centers = cv2.kmeans(ink, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    return centers.astype(np.float64)


def snap_to_palette(colors: np.ndarray, palette: np.ndarray, strength: float) -> np.ndarray:
    """Move Lab ``colors`` ``[N, 3]`` toward their nearest palette color by ``strength`` in [0, 1]."""
    if strength <= 0 or len(palette) == 0:
        return colors
    nearest = palette[np.linalg.norm(colors[:, None, :] - palette[None], axis=2).argmin(axis=1)]
    return colors + strength * (nearest - colors)


def _lab_to_uint8(lab: np.ndarray) -> np.ndarray:
    rgb = lab2rgb(lab.reshape(-1, 1, 3)).reshape(lab.shape)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def paper_regions(labels: np.ndarray, colors: np.ndarray, outside: np.ndarray | None = None,
                  open_labels: np.ndarray | None = None) -> np.ndarray:
    """bool ``[N + 1]``: the paper. Regions that touch the border or are in ``open_labels`` (cut
    from the paper by a trapped ball) and are near-white, and every label in ``outside`` (the
    regions around the drawing, whatever color they were given)."""
    candidates = border_labels(labels) if open_labels is None else np.union1d(border_labels(labels), open_labels)
    chroma = np.hypot(colors[:, 1], colors[:, 2])
    paper = np.zeros(len(colors), bool)
    paper[candidates] = (colors[candidates, 0] > PAPER_LIGHTNESS) & (chroma[candidates] < PAPER_CHROMA)
    if outside is not None:
        paper[outside] = True
    paper[0] = False
    return paper


def lines_on(paint: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """Multiply the sketch's gray lines onto ``paint``: lines stay exactly as drawn, anti-aliasing included."""
    return np.round(paint.astype(np.float32) * (sketch.astype(np.float32)[..., None] / 255.0)).astype(np.uint8)


def line_ends(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the lines of bool ``lines`` ``[H, W]`` end -> (int ``[K, 2]`` (y, x), the skeleton
    uint8 ``[H, W]``): the pixels of their skeleton (scikit-image) with exactly one skeleton neighbour."""
    skeleton = skeletonize(lines).astype(np.uint8)
    neighbours = cv2.filter2D(skeleton, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT) - skeleton
    return np.argwhere((skeleton == 1) & (neighbours == 1)), skeleton


def end_directions(skeleton: np.ndarray, ends: np.ndarray, reach: int) -> np.ndarray:
    """float ``[K, 2]``: the unit direction in which each stroke of ``skeleton`` runs into its end
    (:func:`line_ends`), from the mean of the skeleton pixels within ``reach`` px of it."""
    directions = np.zeros((len(ends), 2))
    for i, (y, x) in enumerate(ends):
        y0, x0 = max(0, y - reach), max(0, x - reach)
        near = np.argwhere(skeleton[y0:y + reach + 1, x0:x + reach + 1]) + (y0, x0)
        near = near[np.hypot(*(near - (y, x)).T) <= reach]
        step = np.array([y, x]) - near.mean(axis=0)
        directions[i] = step / max(np.linalg.norm(step), 1e-9)
    return directions


def close_line_ends(sketch: np.ndarray, max_length: float = CLOSE_MAX_LENGTH) -> np.ndarray:
    """bool ``[H, W]``: straight joins between pairs of line ends, for the segmentation only (never drawn).

    A shape open on a whole side (a shirt whose side lines stop above the picture's bottom, an
    arm running off the top, hair open below) joins the paper however large a ball is tried;
    an artist's fill tool closes it between the two line ends. Pairs are taken shortest first,
    each end once, up to ``max_length`` of the drawing's longer side, among each end's
    :data:`CLOSE_NEIGHBOURS` nearest ends (scipy's k-d tree); the two strokes must run the same way
    and the join across them (the two sides of one open shape), and a join is kept only where its
    middle runs off the lines and through the paper region of the gap-closing segmentation (it
    never cuts a closed shape). A join that encloses paper the network left unpainted is paper
    again (:func:`region_fill`'s near-white rule). A drawing with more than
    :data:`CLOSE_MAX_ENDS` loose ends (an extracted sketch of a photo) gets no joins."""
    lines = line_mask(sketch)
    joins = np.zeros(lines.shape, bool)
    radius = gap_radius(sketch.shape)
    ends, skeleton = line_ends(lines)
    if len(ends) < 2 or len(ends) > CLOSE_MAX_ENDS:  # counted before the per-end work
        return joins
    directions = end_directions(skeleton, ends, 4 * radius + 4)
    dist = distance_to_lines(sketch)
    base = segment_regions(sketch, radius)
    paper = np.isin(base, border_labels(base))
    k = min(CLOSE_NEIGHBOURS + 1, len(ends))
    lengths, partners = cKDTree(ends).query(ends, k=k, distance_upper_bound=max_length * max(sketch.shape))
    pairs = sorted({(float(d), min(a, int(b)), max(a, int(b)))
                    for a in range(len(ends)) for d, b in zip(lengths[a, 1:], partners[a, 1:])
                    if np.isfinite(d) and d > 2 * radius})  # ends within the disc's reach close already
    used = np.zeros(len(ends), bool)
    for length, a, b in pairs:
        if used[a] or used[b]:
            continue
        # the two sides of one open shape: strokes running the same way, the join across them
        # (a join from a leg's end to the belly's would cut a body with a straight seam)
        across = (ends[b] - ends[a]) / length
        if (directions[a] @ directions[b] < CLOSE_PARALLEL
                or max(abs(across @ directions[a]), abs(across @ directions[b])) > CLOSE_ACROSS):
            continue
        yy, xx = draw_line(*ends[a], *ends[b])
        along = np.hypot(yy - ends[a][0], xx - ends[a][1])
        middle = (along > 2 * radius + 1) & (along < length - 2 * radius - 1)
        if (dist[yy[middle], xx[middle]] <= 1.0).any() or not paper[yy[middle], xx[middle]].all():
            continue
        joins[yy, xx] = True
        used[a] = used[b] = True
    return joins


def trap_open_shapes(labels: np.ndarray, sketch: np.ndarray, scales: tuple[int, ...] = TRAP_SCALES,
                     min_outline: float = 0.7) -> np.ndarray:
    """Split the paper region with larger balls, as a trapped-ball fill does.

    Shapes whose outline has gaps wider than the first disc (a horse's legs, a lion's mane drawn
    as open strokes) join the paper. For each of ``scales`` in turn, where a ball that many times
    the gap radius still fits inside such a shape without touching its lines, that spot seeds a
    region of its own; the regions then grow back over the paper region by a watershed on the
    distance to the lines (scikit-image), so two seeds meet where the lines come closest, across
    the gap, and no paint spills through it. A grown shape is kept when at least ``min_outline``
    of its rim lies on the lines (a space between two figures, open above and below, is not a
    shape) and it does not hold the frame through lines drawn on it (a panel's border)."""
    lines = line_mask(sketch)
    # what depends on the lines alone, shared by every pass: the distance to them, and for every
    # frame pixel the nearest pixel off the lines (where segment_regions puts it)
    dist = distance_to_lines(sketch)
    edge = frame_mask(labels.shape)
    _, (iy, ix) = ndimage.distance_transform_edt(lines, return_indices=True)
    frame_home = (iy[edge], ix[edge])
    near_lines = dist <= gap_radius(sketch.shape) + 1
    for scale in scales:
        labels = _trap_pass(labels, lines, dist, edge, frame_home, near_lines,
                            scale * gap_radius(sketch.shape), min_outline)
    return labels


def merge_paper_slivers(labels: np.ndarray, lines: np.ndarray, radius: int, paper_labels: np.ndarray) -> np.ndarray:
    """Give the strips of paper left between painted shapes to their neighbours.

    A trapping pass's watershed may not cross from one region into another, so the paper pixels
    that border a shape trapped earlier stay paper; where a later shape grows up to them, a strip
    a pixel or two wide is left, cut off from the frame, and would be painted white across the
    paint (the top of a lion's mane). ``paper_labels``: the labels left white. Each piece of a
    paper label (off the lines) that no longer reaches the frame, other than the label's largest
    piece, and is no wider than the gap-closing disc of ``radius`` px takes the labels of the shapes it touches (off the lines; each pixel the
    nearest one's, flooding within the strip). Wider pieces stay paper: the spaces between
    figures that trapped shapes close off (a row of chess pieces), where the network's stray
    paint does not belong."""
    paper = np.isin(labels, paper_labels) & ~lines
    parts = np.zeros(labels.shape, np.int32)
    cut_off = np.zeros(labels.shape, bool)
    for label in paper_labels:
        n, own = cv2.connectedComponents(((labels == label) & ~lines).astype(np.uint8), connectivity=4)
        if n <= 2:
            continue
        # the paper itself: the pieces at the frame, or the largest one where the label reaches
        # the frame only through its lines (a comic panel's border)
        home = border_labels(own)
        home = home[home > 0] if (home > 0).any() else [np.bincount(own.ravel())[1:].argmax() + 1]
        away = (own > 0) & ~np.isin(own, home)
        parts[away] = own[away] + parts.max()
        cut_off |= away
    if not cut_off.any():
        return labels
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    wide = np.unique(parts[cv2.erode(cut_off.astype(np.uint8), disc) > 0])  # some ball of the disc fits
    sliver = cut_off & ~np.isin(parts, wide)
    if not sliver.any():
        return labels
    # the shapes flood into the strips they touch, never across a line: a thin band between two
    # drawn lines (a sign's double outline) touches no shape and stays as it was
    shapes = ~paper & ~lines
    grown = watershed(np.zeros(labels.shape, np.uint8), np.where(shapes, labels, 0), mask=shapes | sliver)
    reached = sliver & (grown > 0)
    out = labels.copy()
    out[reached] = grown[reached]
    return out


def _trap_pass(labels: np.ndarray, lines: np.ndarray, dist: np.ndarray, edge: np.ndarray,
               frame_home: tuple[np.ndarray, np.ndarray], near_lines: np.ndarray, radius: int,
               min_outline: float) -> np.ndarray:
    """One pass of :func:`trap_open_shapes` with a ball of ``radius`` px."""
    region = np.isin(labels, border_labels(labels)) & ~lines  # the paper region(s), where shapes may hide
    if not region.any():
        return labels
    free = region & (dist > radius)  # where the ball's centre fits
    _, seeds = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    at_frame = border_labels(seeds)
    markers = np.where(free, seeds + 1, 0)
    # the paper: the seeds at the frame, and the frame itself
    markers[(free & np.isin(seeds, at_frame[at_frame > 0])) | (edge & region)] = 1
    if markers.max() <= 1:  # no ball fits anywhere but in the paper: nothing to trap (and no flooding)
        return labels
    # a seed grows only within its own region: two regions the first disc kept apart stay apart
    seam = np.zeros(labels.shape, bool)
    seam[1:] |= labels[1:] != labels[:-1]
    seam[:-1] |= labels[:-1] != labels[1:]
    seam[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    seam[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    grown = watershed(-dist, markers, mask=region & ~seam)
    framed = set(np.unique(grown[frame_home]).tolist())  # shapes holding the frame through its lines: paper
    out = labels.copy()
    next_label = int(labels.max()) + 1
    for k, box in enumerate(ndimage.find_objects(grown), start=1):
        if k == 1 or box is None or k in framed:
            continue
        shape = grown[box] == k
        rim = shape & ~ndimage.binary_erosion(shape)  # the bounding box's edge counts as rim
        if near_lines[box][rim].mean() >= min_outline:
            out[box][shape] = next_label
            next_label += 1
    return out


def split_open_regions(prediction: np.ndarray, labels: np.ndarray, sketch: np.ndarray,
                       min_share: float = 0.002, min_outline: float = 0.4, max_outside: float = 0.6,
                       max_frame: float = 0.1, pale_lightness: float = HALO_LIGHTNESS,
                       pale_outline: float = HALO_OUTLINE) -> np.ndarray:
    """Split the regions that touch the border by the prediction's own paint.

    A drawing's shapes are often open toward the border (shoulders cut by the frame, a figure
    without a closed outline), so they join the paper in one region and one median color would
    paint them white. Inside each border region, the pixels the network clearly painted (after a
    median filter against halos: lightness below 80 or chroma above 18), opened with the gap disc,
    form connected parts; a part becomes a region of its own when it covers at least
    ``min_share`` of the picture and at least ``min_outline`` of its rim lies on the drawing's
    lines (a shape the lines almost enclose, not paint that leaked onto the paper), but at most
    ``max_outside`` of its border region and ``max_frame`` of the picture's frame: paint that
    covers the paper (a full-frame reference such as a flag makes the network paint the whole
    background) is not a shape. A pale part (median lightness of the prediction over it above
    ``pale_lightness``) needs ``pale_outline`` of its rim on the lines: that is the halo the network
    paints on the paper around a closed silhouette, lines on its inner side only. The rest stays
    paper. Returns new labels."""
    border = border_labels(labels)
    r = gap_radius(labels.shape)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    in_border = np.isin(labels, border)
    # Lab only where it is used (the slow part of a 2048 px render)
    lab = rgb2lab(cv2.medianBlur(prediction, 2 * r + 1)[in_border].reshape(-1, 1, 3)).reshape(-1, 3)
    inked = np.zeros(labels.shape, np.uint8)
    inked[in_border] = (lab[:, 0] < 80.0) | (np.hypot(lab[:, 1], lab[:, 2]) > 18.0)
    inked = cv2.morphologyEx(inked, cv2.MORPH_OPEN, disc)
    lines = cv2.dilate(line_mask(sketch).astype(np.uint8), disc).astype(bool)
    ring_disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * r + 3, 4 * r + 3))
    pad = 2 * r + 1
    padded_lines = np.pad(lines, pad)
    n, parts, stats, _ = cv2.connectedComponentsWithStats(inked, connectivity=4)
    out = labels.copy()
    next_label = int(labels.max()) + 1
    frame = frame_mask(labels.shape)
    outside_area = np.bincount(labels[~line_mask(sketch)].ravel(), minlength=int(labels.max()) + 1)
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < min_share * labels.size:
            continue
        part = (parts == k).astype(np.uint8)
        home = np.bincount(labels[part.astype(bool)]).argmax()  # the border region it lies in
        if (stats[k, cv2.CC_STAT_AREA] > max_outside * outside_area[home]
                or part[frame].mean() > max_frame):
            continue
        # the rim is taken on a padded canvas, so that where paint runs into the frame its rim
        # lies beyond the picture, on no line: paint over the background is not "enclosed"
        padded = cv2.copyMakeBorder(part, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        ring = cv2.dilate(padded, ring_disc).astype(bool) & ~padded.astype(bool)
        if not ring.any():
            continue
        outline = padded_lines[ring].mean()
        if outline < min_outline:
            continue
        inside = part.astype(bool)
        if outline < pale_outline and np.median(rgb2lab(prediction[inside].reshape(-1, 1, 3))[:, 0, 0]) > pale_lightness:
            continue  # a pale halo around a closed silhouette
        out[inside] = next_label
        next_label += 1
    return out


@dataclass
class RegionFill:
    """A drawing's regions and the color each gets: ``labels`` int32 ``[H, W]`` (1..N),
    ``colors`` Lab ``[N + 1, 3]`` (row i is label i), ``paper`` bool ``[N + 1]`` (left white,
    transparent in the color layer). :meth:`paint` renders it; :meth:`recolor` is a user's fix."""

    labels: np.ndarray
    colors: np.ndarray
    paper: np.ndarray

    def label_at(self, x: int, y: int) -> int:
        """The region under pixel (x, y) of the drawing, clipped into the picture."""
        h, w = self.labels.shape
        return int(self.labels[min(max(int(y), 0), h - 1), min(max(int(x), 0), w - 1)])

    def recolor(self, label: int, rgb: tuple[int, int, int] | np.ndarray) -> None:
        """Paint region ``label`` in ``rgb`` (uint8 triple), paper or not."""
        self.colors[label] = rgb2lab(np.asarray(rgb, np.uint8).reshape(1, 1, 3))[0, 0]
        self.paper[label] = False

    def rgb(self) -> np.ndarray:
        """uint8 ``[N + 1, 3]``: each region's color as painted (paper white)."""
        colors = self.colors.copy()
        colors[self.paper] = (100.0, 0.0, 0.0)
        return _lab_to_uint8(colors)

    def paint(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (flat paint ``[H, W, 3]`` uint8 without lines, alpha ``[H, W]`` uint8: 0 on the paper)."""
        return self.rgb()[self.labels], np.where(self.paper[self.labels], 0, 255).astype(np.uint8)


def sketch_regions(sketch: np.ndarray) -> np.ndarray:
    """The regions of line art from its lines alone (int32 ``[H, W]``): the gap-closing
    segmentation of the lines with their loose ends joined (:func:`close_line_ends`), open
    shapes trapped by balls of growing size (:func:`trap_open_shapes` at each of
    :data:`TRAP_SCALES`). The regions fill refines them with the prediction
    (:func:`split_open_regions`); a drawing re-rendered many times (the web app) computes this once."""
    closed = np.where(close_line_ends(sketch), 0, sketch).astype(np.uint8)
    return trap_open_shapes(segment_regions(closed), closed)


def region_fill(prediction: np.ndarray, sketch: np.ndarray, palette: np.ndarray | None = None,
                snap: float = 0.0, paint_background: bool = False, trapped: np.ndarray | None = None) -> RegionFill:
    """The regions of ``sketch`` and their colors from ``prediction`` (see :func:`fill_regions`);
    ``trapped``: :func:`sketch_regions` of ``sketch`` where already computed."""
    trapped = sketch_regions(sketch) if trapped is None else trapped
    labels = split_open_regions(prediction, trapped, sketch)
    colors = region_colors(prediction, labels, sketch)
    # the regions cut out of the paper (trapped or split from it): a space between branches that a
    # ball enclosed by accident, which the network left near-white, is paper, not a pale tint
    base = segment_regions(sketch)
    opened = np.unique(labels[np.isin(base, border_labels(base))])
    paper = paper_regions(labels, colors, None if paint_background else outside_labels(trapped, sketch=sketch), opened)
    if palette is not None:
        colors[~paper] = snap_to_palette(colors[~paper], palette, snap)
    # last, so that no decision above sees them: the regions' colors, the paper and the splits of
    # open shapes all hang on the labels at their edges, and strips merged earlier let stray paint
    # through (an arrow's double outline)
    labels = merge_paper_slivers(labels, line_mask(sketch), gap_radius(sketch.shape), np.flatnonzero(paper))
    return RegionFill(labels=labels, colors=colors, paper=paper)


def fill_regions(prediction: np.ndarray, sketch: np.ndarray, palette: np.ndarray | None = None,
                 snap: float = 0.0, paint_background: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """-> (flat paint ``[H, W, 3]`` uint8 without lines, alpha ``[H, W]`` uint8: 0 on the paper).

    The regions around the drawing (:func:`outside_labels`, less the open shapes split from
    them) stay white paper, as line art is drawn on paper, unless
    ``paint_background``: then they keep the network's color unless it is near-white (for
    full-frame drawings whose outer regions are content, such as a sky)."""
    return region_fill(prediction, sketch, palette, snap, paint_background).paint()


def fill_guided(prediction: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """Edge-aware smoothing of ``prediction`` ``[H, W, 3]`` guided by the sketch (kornia's joint
    bilateral filter): colors stop at lines instead of bleeding across them."""
    h, w = sketch.shape
    k = min(max(3, (round(0.02 * max(h, w)) | 1)), 2 * min(h, w) - 1)  # odd, about 2% of the drawing
    if k < 3:  # a picture one pixel thin: nothing to smooth (and the filter's padding needs room)
        return prediction.copy()
    x = torch.from_numpy(prediction).permute(2, 0, 1)[None].float() / 255.0
    guide = torch.from_numpy(sketch)[None, None].float().expand(1, 3, h, w) / 255.0
    out = joint_bilateral_blur(x, guide, (k, k), sigma_color=0.1, sigma_space=(k / 3.0, k / 3.0))
    return np.clip(np.round(out[0].permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
