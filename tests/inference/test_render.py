"""Full-resolution rendering: regions, paper, lines on top, palette snapping, the color layer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sketchcolor import ColorizePipeline, Config
from sketchcolor.inference.render import (
    fill_guided,
    fill_regions,
    lines_on,
    merge_paper_slivers,
    reference_palette,
    segment_regions,
    snap_to_palette,
    split_open_regions,
    trap_open_shapes,
)


@pytest.fixture
def tiny_pipeline(tiny_model_cfg) -> ColorizePipeline:
    from dataclasses import replace

    from sketchcolor.models import Colorizer

    cfg = replace(tiny_model_cfg, color_path=True)
    torch.manual_seed(0)
    return ColorizePipeline(Colorizer(cfg), Config(model=cfg))


def two_boxes(size: int = 120, gap: int = 0) -> np.ndarray:
    """White paper with two closed boxes side by side (the left one's right side has a ``gap``)."""
    s = np.full((size, size), 255, np.uint8)
    for x0 in (10, 65):
        s[20, x0:x0 + 45] = s[100, x0:x0 + 45] = 0
        s[20:101, x0] = s[20:101, x0 + 44] = 0
    if gap:
        s[60:60 + gap, 54] = 255
    return s


def test_regions_of_closed_shapes_and_small_gaps_are_closed():
    labels = segment_regions(two_boxes())
    assert labels.min() >= 1  # every pixel labeled, lines included
    inside_left, inside_right, paper = labels[60, 30], labels[60, 85], labels[5, 5]
    assert len({int(inside_left), int(inside_right), int(paper)}) == 3
    gapped = segment_regions(two_boxes(gap=2))  # a 2 px gap does not leak into the paper
    assert gapped[60, 30] != gapped[5, 5]


def test_fill_regions_gives_flat_color_per_region_white_paper_and_alpha():
    sketch = two_boxes()
    pred = np.full(sketch.shape + (3,), 250, np.uint8)
    pred[20:101, 10:55] = (200, 40, 40)
    pred[20:101, 65:110] = (40, 60, 200)
    noise = np.random.default_rng(0).integers(-20, 21, pred.shape)
    pred = np.clip(pred.astype(int) + noise, 0, 255).astype(np.uint8)
    paint, alpha = fill_regions(pred, sketch)
    left = paint[25:95, 15:50].reshape(-1, 3)
    assert (left == left[0]).all()  # one flat color
    assert np.abs(left[0].astype(int) - (200, 40, 40)).max() < 12  # the region's median
    assert tuple(paint[5, 5]) == (255, 255, 255) and alpha[5, 5] == 0 and alpha[60, 30] == 255
    out = lines_on(paint, sketch)
    assert tuple(out[20, 30]) == (0, 0, 0)  # lines stay exactly as drawn


def test_palette_snapping_moves_colors_toward_the_reference():
    ref = np.full((40, 40, 3), 255, np.uint8)
    ref[:20] = (20, 160, 40)
    ref[20:, :20] = (230, 200, 20)
    palette = reference_palette(ref, k=2)
    assert len(palette) == 2
    colors = np.array([[50.0, -30.0, 30.0]])
    assert np.allclose(snap_to_palette(colors, palette, 0.0), colors)
    full = snap_to_palette(colors, palette, 1.0)
    assert np.min(np.linalg.norm(palette - full[0], axis=1)) < 1e-6
    half = snap_to_palette(colors, palette, 0.5)
    assert np.allclose(half, (colors + full) / 2)


def test_guided_fill_keeps_size_and_flat_areas():
    sketch = two_boxes()
    pred = np.full(sketch.shape + (3,), 128, np.uint8)
    out = fill_guided(pred, sketch)
    assert out.shape == pred.shape and np.abs(out.astype(int) - 128).max() <= 1


@pytest.mark.parametrize("fill", ["regions", "guided", "none"])
def test_pipeline_renders_at_the_sketch_size(fill, tiny_pipeline):
    sketch = np.full((90, 150), 255, np.uint8)
    sketch[20:70, 30] = sketch[20:70, 120] = sketch[20, 30:121] = sketch[70, 30:121] = 0
    ref = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    result = tiny_pipeline.colorize(sketch, ref, fill=fill, palette_snap=0.5 if fill == "regions" else 0.0)
    assert result.image.shape == (90, 150, 3) and result.color_layer.shape == (90, 150, 4)
    assert result.fill == fill
    if fill != "none":
        assert tuple(result.image[20, 60]) == (0, 0, 0)  # full-resolution lines on top
    else:
        assert np.array_equal(result.image, result.prediction)


def test_pipeline_rejects_bad_fill_and_strength(tiny_pipeline):
    from sketchcolor.errors import SketchColorError

    s, r = np.full((32, 32), 255, np.uint8), np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(SketchColorError, match="fill"):
        tiny_pipeline.colorize(s, r, fill="blur")
    with pytest.raises(SketchColorError, match="palette"):
        tiny_pipeline.colorize(s, r, palette_snap=2.0)


def test_a_shape_with_a_wide_gap_is_trapped_by_the_larger_ball():
    sketch = two_boxes(gap=5)  # wider than the first disc closes at 120 px
    labels = segment_regions(sketch)
    assert labels[60, 30] == labels[5, 5]  # the left box leaks into the paper
    trapped = trap_open_shapes(labels, sketch)
    assert trapped[60, 30] != trapped[5, 5]  # ... and is its own region again
    assert trapped[60, 85] == labels[60, 85]  # closed shapes keep their label
    sketch_paint = np.full(sketch.shape + (3,), 250, np.uint8)
    sketch_paint[25:95, 15:50] = (200, 40, 40)
    paint, alpha = fill_regions(sketch_paint, sketch)
    assert alpha[60, 30] == 255 and alpha[5, 5] == 0
    assert np.abs(paint[60, 30].astype(int) - (200, 40, 40)).max() < 12


def test_paint_over_the_whole_background_leaves_the_paper_white():
    """A full-frame reference (a flag) makes the network paint the background too: the regions
    around the drawing stay paper, and paint that runs into the frame is not taken for an open
    shape; ``paint_background`` keeps the outside's color for full-frame drawings."""
    sketch = two_boxes()
    pred = np.empty(sketch.shape + (3,), np.uint8)
    pred[:, :60] = (30, 160, 40)  # green half, blue half, over boxes and paper alike
    pred[:, 60:] = (40, 120, 230)
    paint, alpha = fill_regions(pred, sketch)
    assert tuple(paint[5, 5]) == (255, 255, 255) and tuple(paint[115, 115]) == (255, 255, 255)
    assert (alpha[:8] == 0).all() and (alpha[-8:] == 0).all()
    assert alpha[60, 30] == 255 and np.abs(paint[60, 30].astype(int) - (30, 160, 40)).max() < 12
    painted, alpha_bg = fill_regions(pred, sketch, paint_background=True)
    assert alpha_bg[5, 5] == 255 and tuple(painted[5, 5]) != (255, 255, 255)


def test_outside_labels_are_the_regions_holding_the_frame():
    from sketchcolor.inference.render import outside_labels

    labels = np.ones((100, 100), np.int32)
    labels[70:, 40:60] = 2  # a shape cut by the bottom edge: 20 of 396 frame pixels
    labels[30:50, 30:50] = 3  # inside
    assert outside_labels(labels).tolist() == [1]
    labels[:, 50:] = 4  # two halves of the background: both hold a large share of the frame
    assert outside_labels(labels).tolist() == [1, 4]


def test_a_drawing_framed_by_its_own_outline_is_not_paper():
    """A flag: its rectangle runs along the picture's frame, so the thickened lines join its inside
    to the frame's pixels. Those pixels do not make the inside the paper; the strips of real paper
    above and below stay white."""
    from sketchcolor.inference.render import outside_labels

    sketch = np.full((120, 120), 255, np.uint8)
    sketch[20, :] = sketch[100, :] = 0
    sketch[20:101, 0] = sketch[20:101, 119] = 0  # the sides on the frame: a third of its pixels
    labels = segment_regions(sketch)  # (the trapped-ball passes also find the inside enclosed)
    assert labels[60, 60] in outside_labels(labels).tolist()  # by the frame alone it looks like paper
    assert labels[60, 60] not in outside_labels(labels, sketch=sketch).tolist()
    assert {labels[5, 60], labels[115, 60]} <= set(outside_labels(labels, sketch=sketch).tolist())
    pred = np.empty((120, 120, 3), np.uint8)
    pred[:] = (20, 100, 160)  # the network paints everything blue
    paint, alpha = fill_regions(pred, sketch)
    assert alpha[60, 60] == 255 and np.abs(paint[60, 60].astype(int) - (20, 100, 160)).max() < 12
    assert alpha[5, 60] == 0 and alpha[115, 60] == 0


def test_a_broken_outline_is_trapped_along_its_lines_not_as_a_ball():
    """A circle whose outline is broken by a gap wider than the first balls close: a larger ball
    seeds it, and the watershed on the distance to the lines cuts across the gap, so the region
    is the circle (no paint beyond its outline) and the paper around stays one region."""
    import cv2

    from sketchcolor.inference.render import sketch_regions

    sketch = np.full((200, 200), 255, np.uint8)
    cv2.circle(sketch, (100, 100), 60, 0, 2)
    sketch[88:113, 155:165] = 255  # a 24 px gap on the right
    labels = sketch_regions(sketch)
    inside, outside = labels[100, 100], labels[5, 5]
    assert inside != outside
    yy, xx = np.mgrid[:200, :200]
    r = np.hypot(yy - 100, xx - 100)
    assert (labels[r < 55] == inside).all()  # the whole disc
    assert not (labels[(r > 66) & (r < 90)] == inside).any()  # and nothing outside it, also by the gap
    # the circle takes the network's paint, but a trapped space the network left near-white is paper
    pred = np.full((200, 200, 3), 250, np.uint8)
    pred[r < 58] = (200, 60, 40)
    paint, alpha = fill_regions(pred, sketch)
    assert alpha[100, 100] == 255 and np.abs(paint[100, 100].astype(int) - (200, 60, 40)).max() < 12
    assert alpha[5, 5] == 0
    pred[r < 58] = (238, 246, 250)  # a pale tint, as of a halo
    paint, alpha = fill_regions(pred, sketch)
    assert alpha[100, 100] == 0 and tuple(paint[100, 100]) == (255, 255, 255)
    # the rim rule: the cut across the gap is rim on no line, so a shape that must lie wholly on
    # its lines is refused and the circle stays with the paper
    from sketchcolor.inference.render import segment_regions, trap_open_shapes

    strict = trap_open_shapes(segment_regions(sketch), sketch, min_outline=1.0)
    assert strict[100, 100] == strict[5, 5]


def test_a_panel_border_drawn_on_the_frame_keeps_its_paper():
    """A comic panel: a border line all around the frame and a circle inside. The paper inside
    the border touches the frame only through that line; it is still the paper, not a shape."""
    import cv2

    sketch = np.full((256, 256), 255, np.uint8)
    cv2.rectangle(sketch, (0, 0), (255, 255), 0, 2)
    cv2.circle(sketch, (128, 128), 40, 0, 2)
    pred = np.full((256, 256, 3), (180, 200, 230), np.uint8)  # a pale wash over everything
    paint, alpha = fill_regions(pred, sketch)
    assert (alpha == 0).mean() > 0.85  # the paper around the circle
    assert alpha[128, 128] == 255  # the circle is painted


def test_a_shape_cut_by_the_frame_beside_lines_on_the_frame_keeps_its_paint():
    """Lines along the left and right edges leave fewer frame pixels to count; the share a shape
    cut by the bottom edge holds is still measured against the whole frame, so it is not paper."""
    sketch = np.full((256, 256), 255, np.uint8)
    sketch[:, 0] = sketch[:, -1] = 0
    sketch[180:, 60] = sketch[180:, 196] = 0
    sketch[180, 60:197] = 0  # a shirt cut by the bottom edge
    pred = np.full((256, 256, 3), 250, np.uint8)
    pred[181:, 61:196] = (40, 60, 200)
    paint, alpha = fill_regions(pred, sketch)
    assert alpha[220, 128] == 255 and np.abs(paint[220, 128].astype(int) - (40, 60, 200)).max() < 12
    assert alpha[60, 128] == 0


def test_a_trapped_shape_does_not_flood_a_region_the_first_disc_sealed():
    """An open cup with a small box beside it whose shared wall has a gap the first disc closes:
    the ball's seed in the cup grows within the cup's region only, the box keeps its own paint."""
    import cv2

    sketch = np.full((256, 256), 255, np.uint8)
    cv2.rectangle(sketch, (40, 120), (140, 255), 0, 2)
    sketch[117:124, 75:105] = 255  # a 30 px opening at the top: the cup joins the paper
    cv2.rectangle(sketch, (140, 225), (156, 255), 0, 2)
    sketch[238:241, 136:146] = 255  # a 3 px gap in the shared wall
    pred = np.full((256, 256, 3), 250, np.uint8)
    pred[122:254, 42:139] = (200, 60, 40)
    pred[227:254, 142:155] = (40, 60, 200)
    paint, _ = fill_regions(pred, sketch)
    assert np.abs(paint[240, 148].astype(int) - (40, 60, 200)).max() < 12
    assert np.abs(paint[180, 90].astype(int) - (200, 60, 40)).max() < 12


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 5)])
def test_guided_fill_and_regions_take_pictures_a_pixel_or_two_thin(shape):
    pred = np.full(shape + (3,), 90, np.uint8)
    sketch = np.full(shape, 255, np.uint8)
    assert fill_guided(pred, sketch).shape == shape + (3,)
    paint, alpha = fill_regions(pred, sketch)
    assert paint.shape == shape + (3,) and alpha.shape == shape


def test_paint_on_the_paper_beside_the_drawing_stays_paper():
    """Paint the network puts on the paper next to the drawing (a flag's colors beside a figure),
    away from the picture's edge, is not a shape: the regions around the drawing stay paper."""
    sketch = two_boxes()
    pred = np.full(sketch.shape + (3,), 255, np.uint8)
    pred[105:116, 30:90] = (40, 120, 230)
    pred[22:99, 12:53] = (200, 40, 40)
    paint, alpha = fill_regions(pred, sketch)
    assert (alpha[106:115, 32:88] == 0).all() and tuple(paint[110, 60]) == (255, 255, 255)
    assert alpha[60, 30] == 255


def step_shape() -> np.ndarray:
    """A closed step: a tower at the left rising from a block; the notch at the upper right is paper."""
    s = np.full((120, 120), 255, np.uint8)
    poly = np.array([[20, 100], [20, 20], [55, 20], [55, 60], [100, 60], [100, 100]], np.int32)
    cv2.polylines(s, [poly], True, 0, 2)
    return s


@pytest.mark.parametrize("top", [25, 30, 40])
def test_a_pale_halo_in_a_notch_of_a_closed_shape_stays_paper(top: int) -> None:
    """Pale paint on the paper against two sides of a closed silhouette (lines on its inner side
    only) is the network's halo, not an open shape: it stays paper. The same paint, darker than
    the halo lightness, is still taken for a shape the lines almost enclose."""
    sketch = step_shape()
    for color, painted in (((250, 240, 170), False), ((200, 150, 40), True)):
        pred = np.full(sketch.shape + (3,), 255, np.uint8)
        pred[top:59, 57:92] = color
        paint, alpha = fill_regions(pred, sketch)
        assert (alpha[55, 70] == 255) == painted, color
        if not painted:
            assert tuple(paint[55, 70]) == (255, 255, 255)
        # without the rule the pale halo was a shape
        split = split_open_regions(pred, segment_regions(sketch), sketch, pale_lightness=101.0)
        assert split[55, 70] != split[5, 5]


def test_a_shirt_open_below_is_closed_between_its_line_ends():
    """Shoulders drawn as an arch whose two sides stop above the picture's bottom (as OpenMoji
    draws people): no ball can trap the shirt, as it is open along its whole lower side. Its two
    line ends are joined, so the network's shirt paint stays a shirt and the paper below it and
    around it stays white."""
    import cv2

    from sketchcolor.inference.render import close_line_ends, sketch_regions

    sketch = np.full((200, 200), 255, np.uint8)
    cv2.ellipse(sketch, (100, 150), (50, 50), 0, 180, 360, 0, 3)  # the upper half: the shoulders
    cv2.line(sketch, (50, 150), (50, 175), 0, 3)
    cv2.line(sketch, (150, 150), (150, 175), 0, 3)  # the sides stop at y = 175, 25 px above the bottom
    joins = close_line_ends(sketch)
    assert joins[174:178, 60:140].any(axis=0).all()  # one join across the bottom, end to end
    assert not joins[:140].any()
    labels = sketch_regions(sketch)
    assert labels[160, 100] != labels[5, 5] and labels[160, 100] != labels[190, 100]
    pred = np.full((200, 200, 3), 252, np.uint8)
    pred[100:176, 52:149] = (150, 120, 210)  # the network's lavender shirt, ending at the line ends
    paint, alpha = fill_regions(pred, sketch)
    assert alpha[160, 100] == 255 and np.abs(paint[160, 100].astype(int) - (150, 120, 210)).max() < 12
    assert alpha[190, 100] == 0 and alpha[5, 5] == 0 and alpha[160, 10] == 0


def test_line_ends_are_never_joined_across_a_closed_shape_or_in_a_photo_sketch():
    """Two strokes facing each other inside a closed circle are not joined (the join would cut the
    circle's own region in two); a sketch with hundreds of loose ends (dashes, as an extracted
    photo gives) gets no joins at all."""
    import cv2

    from sketchcolor.inference.render import CLOSE_MAX_ENDS, close_line_ends

    sketch = np.full((200, 200), 255, np.uint8)
    cv2.circle(sketch, (100, 100), 80, 0, 3)
    cv2.line(sketch, (50, 100), (80, 100), 0, 3)
    cv2.line(sketch, (120, 100), (150, 100), 0, 3)
    assert not close_line_ends(sketch).any()
    dashes = np.full((240, 240), 255, np.uint8)
    for y in range(4, 236, 8):
        for x in range(4, 236, 14):
            dashes[y:y + 2, x:x + 6] = 0
    assert (CLOSE_MAX_ENDS < 2 * 29 * 17) and not close_line_ends(dashes).any()


def test_a_region_takes_its_color_away_from_the_dark_halo_along_its_lines():
    """The network darkens its paint along the lines it draws; a band 12 px wide whose prediction
    is dark for 4 px along each of its lines takes the color of its middle, not the dark."""
    from skimage.color import rgb2lab

    from sketchcolor.inference.render import region_colors, segment_regions

    sketch = np.full((100, 100), 255, np.uint8)
    sketch[40:42] = 0
    sketch[54:56] = 0  # the band: rows 42-53
    pred = np.full((100, 100, 3), 255, np.uint8)
    pred[42:54] = (230, 80, 160)
    pred[42:46] = pred[50:54] = (40, 40, 40)  # the halo: 8 of the band's 12 rows
    labels = segment_regions(sketch)
    band = labels[47, 50]
    assert (labels[42:54] == band).all()
    pink = rgb2lab(np.array([[[230, 80, 160]]], np.uint8))[0, 0]
    plain = region_colors(pred, labels)[band]
    cored = region_colors(pred, labels, sketch)[band]
    assert np.linalg.norm(cored - pink) < 3 < np.linalg.norm(plain - pink)


def test_a_thin_region_takes_its_color_off_the_lines():
    """The pixels under the lines join their nearest region and the network paints them dark: a
    band 6 px wide between lines 8 px thick is mostly line pixels, yet it takes its own color."""
    from skimage.color import rgb2lab

    from sketchcolor.inference.render import region_colors, segment_regions

    sketch = np.full((120, 120), 255, np.uint8)
    sketch[40:48] = 0
    sketch[54:62] = 0  # the band: rows 48-53
    pred = np.full((120, 120, 3), 255, np.uint8)
    pred[40:62] = (20, 20, 20)  # the network draws the lines black
    pred[48:54] = (90, 170, 230)
    labels = segment_regions(sketch)
    band = labels[50, 60]
    assert (labels[48:54] == band).all() and (labels[40:62] == band).sum() > 2 * 6 * 120
    blue = rgb2lab(np.array([[[90, 170, 230]]], np.uint8))[0, 0]
    assert np.linalg.norm(region_colors(pred, labels, sketch)[band] - blue) < 3


def test_region_colors_on_a_large_picture_sample_a_grid_and_keep_small_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above COLOR_SAMPLE_PIXELS the medians are taken over a grid of pixels: a smooth region gets
    nearly its full median, a region the grid misses (2 x 2 px) its own color, not nothing."""
    import sketchcolor.inference.render as render

    rng = np.random.default_rng(0)
    labels = np.ones((200, 200), np.int32)
    labels[101:103, 101:103] = 2  # off every 7th row and column: the grid misses it
    pred = np.zeros((200, 200, 3), np.uint8)
    pred[..., 0] = np.clip(120 + np.linspace(-40, 40, 200)[None, :] + rng.normal(0, 3, (200, 200)), 0, 255)
    pred[..., 1], pred[..., 2] = 90, 60
    pred[101:103, 101:103] = (20, 200, 40)
    full = render.region_colors(pred, labels)
    monkeypatch.setattr(render, "COLOR_SAMPLE_PIXELS", 1000)  # grid step ceil(sqrt(40)) = 7
    sampled = render.region_colors(pred, labels)
    assert np.linalg.norm(sampled[1] - full[1]) < 1.0
    assert np.allclose(sampled[2], full[2]) and sampled[2, 1] < -50  # the small green region


def test_a_region_painted_in_several_colors_takes_the_dominant_one_not_their_mix():
    """The network paints a region 40% red, 35% white, 25% green: the per-channel median of all
    its pixels mixes them into a color no one painted; the region takes the red, the median of
    the pixels near its dominant color."""
    from skimage.color import rgb2lab

    from sketchcolor.inference.render import dominant_colors, region_colors

    labels = np.ones((40, 50), np.int32)
    pred = np.full((40, 50, 3), 255, np.uint8)
    pred[:16] = (200, 30, 40)
    pred[30:] = (40, 160, 60)
    lab = rgb2lab(pred).reshape(-1, 3)
    painted = rgb2lab(np.array([[[200, 30, 40], [255, 255, 255], [40, 160, 60]]], np.uint8))[0]
    mixed = np.median(lab, axis=0)  # the plain median: far from all three colors
    assert np.linalg.norm(painted - mixed, axis=1).min() > 20
    assert np.linalg.norm(dominant_colors(lab, labels.ravel(), 1)[1] - painted[0]) < 16  # a bin's center
    assert np.linalg.norm(region_colors(pred, labels)[1] - painted[0]) < 1e-6


def test_strips_of_paper_cut_off_between_shapes_join_their_neighbours():
    """A strip of paper one or two pixels wide left between two trapped shapes, cut off from the
    frame, takes its neighbours' labels; paper that reaches the frame, is wider than the
    gap-closing disc, or touches no shape but only lines (a band between a double outline) stays
    paper."""
    labels = np.ones((40, 60), np.int32)  # 1: the paper
    labels[5:35, 5:20] = 2
    labels[5:35, 22:40] = 3   # column 20-21: a strip of paper between shapes 2 and 3 ...
    labels[5, 20:22] = labels[34, 20:22] = 2  # ... closed off from the rest of the paper
    labels[10:20, 25:35] = 1  # a hole in shape 3 wider than the disc: paper, not a strip
    labels[30:40, 45:47] = 4
    labels[30:40, 48:50] = 4  # column 47: a strip that reaches the frame: paper
    lines = np.zeros(labels.shape, bool)
    lines[10:31, 50] = lines[10:31, 52] = lines[10, 50:53] = lines[30, 50:53] = True  # a band between two lines
    labels[10:31, 51] = 5  # under the lines, the nearest shape's label (segment_regions)
    labels[11:30, 51] = 1  # the band: paper that touches no shape, only lines
    out = merge_paper_slivers(labels, lines, radius=2, paper_labels=np.array([1]))
    assert set(np.unique(out[6:34, 20:22])) == {2, 3}
    assert (out[7:33, 20] == 2).all() and (out[7:33, 21] == 3).all()  # each pixel to its nearest side
    assert (out[10:20, 25:35] == 1).all() and (out[30:40, 47] == 1).all() and (out[:5] == 1).all()
    assert (out[11:30, 51] == 1).all()  # nothing floods across a line
    assert (out[labels != 1] == labels[labels != 1]).all()


def test_the_lions_mane_has_no_white_strips_between_its_trapped_parts():
    """The demo's lion (mane drawn as open arcs) under flat orange paint: no strip of paper is
    left between its painted shapes (white strips across the paint before
    :func:`merge_paper_slivers`), and the paper around it stays white."""
    from pathlib import Path

    from PIL import Image

    from sketchcolor.inference.render import border_labels, line_mask, region_fill

    sketch = np.asarray(Image.open(Path(__file__).parents[2] / "examples/sketches/lion.png").convert("L"))
    fill = region_fill(np.full((*sketch.shape, 3), (240, 160, 40), np.uint8), sketch)
    white = fill.paper[fill.labels] & ~line_mask(sketch)
    n, parts = cv2.connectedComponents(white.astype(np.uint8), connectivity=4)
    cut_off = (parts > 0) & ~np.isin(parts, border_labels(parts))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))  # the gap radius at 256 px is 2
    wide = np.unique(parts[cv2.erode(cut_off.astype(np.uint8), disc) > 0])
    assert not (cut_off & ~np.isin(parts, wide)).any(), "strips of paper between painted shapes"
    assert white[2, 2] and white[-3, -3] and not white[100, 128]  # paper around, paint inside
