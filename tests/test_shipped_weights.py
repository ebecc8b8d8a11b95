"""The shipped default weights: they load, and beat two baselines on held-out drawings.

The drawings are OpenMoji test-split pairs kept in examples/testset (never seen in training),
each with its augmented self-reference, so the target is known and L1 is meaningful.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sketchcolor.data.io import load_image
from sketchcolor.evaluation.baselines.colorless import Colorless
from sketchcolor.evaluation.baselines.global_transfer import GlobalTransfer
from sketchcolor.evaluation.selfref import mean_l1, self_reference_cases

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "default"
TESTSET = ROOT / "examples" / "testset"

pytestmark = pytest.mark.skipif(not (WEIGHTS / "model.safetensors").is_file(), reason="no shipped weights yet")


@pytest.fixture(scope="module")
def pipe():
    from sketchcolor import ColorizePipeline

    return ColorizePipeline.from_pretrained(WEIGHTS, device="cpu")


def test_shipped_config_records_provenance(pipe) -> None:
    import json

    meta = json.loads((WEIGHTS / "config.json").read_text())["meta"]
    for key in ("step", "train_seconds", "hardware", "git_commit", "data_manifest_sha256", "recipe"):
        assert meta.get(key), key
    assert (WEIGHTS / "model.safetensors").stat().st_size < 50 * 1024 * 1024


def test_shipped_weights_beat_colorless_and_global_transfer(pipe, capsys: pytest.CaptureFixture[str]) -> None:
    with (TESTSET / "pairs.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 20
    drawings = [(load_image(TESTSET / r["sketch"]), load_image(TESTSET / r["image"])) for r in rows]
    cases = self_reference_cases(drawings, pipe, seed=0)
    ours = mean_l1(lambda s, r: pipe(s, r), cases)
    colorless = mean_l1(Colorless(), cases)
    global_transfer = mean_l1(GlobalTransfer(), cases)
    with capsys.disabled():
        print(f"\nL1 to target on {len(cases)} test-split self-reference pairs: "
              f"sketchcolor {ours:.4f}, colorless {colorless:.4f}, global transfer {global_transfer:.4f}")
    assert ours < colorless and ours < global_transfer
