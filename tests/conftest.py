"""Shared fixtures: a tiny model config and scikit-image's bundled photos written as PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sketchcolor.config import ModelConfig
from sketchcolor.data.sources.skimage_samples import write_sample_photos

# The test machine is small and shared: keep torch on few threads.
torch.set_num_threads(1)


@pytest.fixture
def tiny_model_cfg() -> ModelConfig:
    """32 px inputs, two stride-2 layers -> 8 x 8 feature grid, k = 56 channels."""
    cfg = ModelConfig(
        image_size=32,
        encoder_channels=(4, 4, 8, 8, 16, 16),
        downsample_layers=(3, 5),
        attention_dim=16,
        bottleneck_channels=16,
        num_res_blocks=1,
        disc_channels=8,
        disc_layers=2,
    )
    cfg.validate()
    return cfg


@pytest.fixture(scope="session")
def sample_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """scikit-image's bundled color photos, longest side 128 px, as PNG paths."""
    return write_sample_photos(tmp_path_factory.mktemp("sample_photos"), max_side=128)
