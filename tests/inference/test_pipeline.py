"""ColorizePipeline: the Python API on arrays and files of any size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketchcolor import ColorizePipeline, Config
from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import save_artifact


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
