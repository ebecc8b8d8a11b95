"""Fixtures for the robustness tests: a tiny seeded model artifact and two good pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import save_artifact


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory, small_config) -> Path:
    """A seeded, untrained Colorizer of the tiny test model (tiny.yaml shrunk, see tests/conftest.py)
    saved as an inference artifact (config.json + safetensors)."""
    cfg = small_config()
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("artifact") / "model", Colorizer(cfg.model).eval(), cfg)


@pytest.fixture(scope="session")
def good_pictures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 48 x 40 line drawing and a 30 x 50 color picture."""
    d = tmp_path_factory.mktemp("good")
    sketch = np.full((40, 48), 255, np.uint8)
    sketch[10, 5:40] = 0
    sketch[5:35, 24] = 0
    Image.fromarray(sketch).save(d / "good_sketch.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)).save(d / "good_reference.png")
    return d / "good_sketch.png", d / "good_reference.png"


@pytest.fixture(scope="session")
def train_photos(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path]) -> Path:
    """Three of scikit-image's photos in a folder of their own (fewer files to decode per run)."""
    d = tmp_path_factory.mktemp("train_photos")
    for p in sample_photos[:3]:
        (d / p.name).write_bytes(p.read_bytes())
    return d
