"""Shared fixtures: the tiny test model (as a config and as recipe overrides), scikit-image's
bundled photos written as PNG files, and small copies of the real data sources' layouts.

``tests`` is not a package, so test modules reach what is defined here through fixtures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from sketchcolor.config import Config, ModelConfig, load_config
from sketchcolor.data.sources.skimage_samples import write_sample_photos

# The test machine is small and shared: keep torch on few threads.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TINY_RECIPE = ROOT / "configs" / "tiny.yaml"

# The tiny test model, defined once: smaller still than configs/tiny.yaml. 32 px inputs, two
# stride-2 layers -> 8 x 8 feature grid, k = 56 channels; a training step takes a few ms on 2
# cores. `tiny_model_cfg` builds a ModelConfig from it (other fields at their defaults); the
# recipe tests apply it to tiny.yaml as overrides (`small_overrides`, `small_config`).
SMALL_MODEL: dict[str, Any] = {
    "image_size": 32,
    "encoder_channels": (4, 4, 8, 8, 16, 16),
    "downsample_layers": (3, 5),
    "attention_dim": 16,
    "bottleneck_channels": 16,
    "num_res_blocks": 1,
    "disc_channels": 8,
    "disc_layers": 2,
}


def _override(key: str, value: Any) -> str:
    """``("encoder_channels", (4, 8))`` -> ``"model.encoder_channels=[4,8]"`` (a ``--set`` value)."""
    text = "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, tuple) else str(value)
    return f"model.{key}={text}"


SMALL_MODEL_OVERRIDES: tuple[str, ...] = tuple(_override(k, v) for k, v in SMALL_MODEL.items())


@pytest.fixture
def tiny_model_cfg() -> ModelConfig:
    """The tiny test model (:data:`SMALL_MODEL`) with every other field at its default."""
    cfg = ModelConfig(**SMALL_MODEL)
    cfg.validate()
    return cfg


@pytest.fixture(scope="session")
def tiny_recipe() -> Path:
    """``configs/tiny.yaml``."""
    return TINY_RECIPE


@pytest.fixture(scope="session")
def small_overrides() -> tuple[str, ...]:
    """Dotted overrides that shrink tiny.yaml's model to the tiny test model, e.g.
    ``"model.encoder_channels=[4,4,8,8,16,16]"``: ``load_config(tiny_recipe, [*small_overrides, ...])``
    or ``--set`` on the command line."""
    return SMALL_MODEL_OVERRIDES


@pytest.fixture(scope="session")
def small_config() -> Callable[..., Config]:
    """``small_config(*extra)``: tiny.yaml with the tiny test model and the dotted overrides ``extra``."""

    def make(*extra: str) -> Config:
        return load_config(TINY_RECIPE, [*SMALL_MODEL_OVERRIDES, *extra])

    return make


@pytest.fixture(scope="session")
def sample_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """scikit-image's bundled color photos, longest side 128 px, as PNG paths."""
    return write_sample_photos(tmp_path_factory.mktemp("sample_photos"), max_side=128)


# Small copies of the real sources' layouts, for prepare-data, evaluation and ablation tests.
COLOR = '<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><circle cx="36" cy="36" r="{r}" fill="{fill}" stroke="#000" stroke-width="2"/></svg>'
LINE = '<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><circle cx="36" cy="36" r="{r}" fill="none" stroke="#000" stroke-width="2"/></svg>'


def _make_openmoji(root: Path) -> Path:
    """An openmoji-shaped package: 2 drawings, one with two skin-tone variants, one broken file."""
    (root / "color" / "svg").mkdir(parents=True)
    (root / "black" / "svg").mkdir(parents=True)
    (root / "data").mkdir()
    items = {"1F600": (20, "#FCEA2B", ""), "1F44B": (15, "#FFFFFF", ""),
             "1F44B-1F3FB": (15, "#fadcbc", "1F44B"), "1F44B-1F3FF": (15, "#7a4e33", "1F44B")}
    meta = []
    for code, (r, fill, base) in items.items():
        (root / "color" / "svg" / f"{code}.svg").write_text(COLOR.format(r=r, fill=fill))
        (root / "black" / "svg" / f"{code}.svg").write_text(LINE.format(r=r))
        meta.append({"hexcode": code, "annotation": f"emoji {code}", "openmoji_author": "Test Artist",
                     "skintone_base_hexcode": base})
    (root / "color" / "svg" / "BROKEN.svg").write_text("<svg this is not xml")
    (root / "black" / "svg" / "BROKEN.svg").write_text("<svg this is not xml")
    (root / "data" / "openmoji.json").write_text(json.dumps(meta))
    return root


def _make_clipart(root: Path) -> Path:
    """A clip-art tree: colored, black-and-white, sizeless (no width/height/viewBox) and broken files."""
    (root / "animals").mkdir(parents=True)
    (root / "people").mkdir()
    (root / "animals" / "red.svg").write_text(
        '<svg width="64" height="48" xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<metadata><dc:title>Red box</dc:title><dc:creator><dc:title>Jo</dc:title></dc:creator></metadata>'
        '<rect x="4" y="4" width="56" height="40" fill="#d02020" stroke="#000"/></svg>')
    (root / "animals" / "bw.svg").write_text(
        '<svg width="64" height="64" xmlns="http://www.w3.org/2000/svg"><circle cx="32" cy="32" r="20" fill="none" stroke="#000" stroke-width="3"/></svg>')
    (root / "people" / "sizeless.svg").write_text(
        '<svg width="100%" height="100%" xmlns="http://www.w3.org/2000/svg"><rect x="10" y="10" width="80" height="50" fill="#2040e0"/></svg>')
    (root / "people" / "broken.svg").write_text("<svg><rect")
    return root




@pytest.fixture(scope="session")
def make_openmoji():
    """Builder: ``make_openmoji(root) -> root`` with an openmoji-shaped package."""
    return _make_openmoji


@pytest.fixture(scope="session")
def make_clipart():
    """Builder: ``make_clipart(root) -> root`` with an Open Clip Art-shaped tree."""
    return _make_clipart
