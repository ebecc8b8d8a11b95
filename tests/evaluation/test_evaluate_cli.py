"""`sketchcolor evaluate` and `sketchcolor ablate` end to end on a tiny prepared folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sketchcolor.cli import main

TRAIN = ["train.batch_size=2", "train.log_every=1", "train.checkpoint_every=100"]  # on top of the tiny test model


@pytest.fixture(scope="module")
def small(small_overrides: tuple[str, ...]) -> list[str]:
    """``--set`` arguments: the tiny test model (conftest) and :data:`TRAIN`."""
    return [arg for s in [*small_overrides, *TRAIN] for arg in ("--set", s)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, make_openmoji, make_clipart) -> Path:
    from sketchcolor.data.sources.prepare import prepare

    tmp = tmp_path_factory.mktemp("evaldata")
    out = tmp / "data"
    prepare("openmoji", out, size=64, src=make_openmoji(tmp / "om"), workers=1, progress=False)
    prepare("openclipart", out, size=64, src=make_clipart(tmp / "clip"), workers=1, progress=False)
    return out


def test_ablation_gives_one_row_per_term_set(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            tiny_recipe: Path, small: list[str]) -> None:
    args = ["ablate", "--recipe", str(tiny_recipe), "--budget", "2", "--data", str(data),
            "--out", str(tmp_path / "abl"), "--split", "train", "--no-fid", "--no-vgg", "-q", *small]
    assert main(args) == 0
    results = json.loads((tmp_path / "abl" / "ablation.json").read_text())["results"]
    assert list(results) == ["L_rec", "+ L_adv", "+ L_tr", "+ L_perc", "+ L_style"]
    for row in results.values():
        assert 0 <= row["L1 (self) ↓"] <= 1 and "corr. top-1 (self) ↑" in row
    # the rows really trained with different objectives
    cfgs = [json.loads((p / "config.json").read_text())["loss"] for p in sorted((tmp_path / "abl").iterdir()) if p.is_dir()]
    assert {c["lambda_tr"] for c in cfgs} == {0.0, 1.0} and {c["lambda_adv"] for c in cfgs} == {0.0, 1.0}
    assert "| losses |" in capsys.readouterr().out


def test_evaluate_writes_tables_and_grid(data: Path, tmp_path: Path, tiny_recipe: Path, small: list[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--config", str(tiny_recipe), "--data", str(data), "--out", str(run), "-q",
            "--set", "train.steps=2", *small]
    assert main(args) == 0
    assert main(["evaluate", "--weights", str(run / "model"), "--data", str(data), "--split", "train", "--no-fid",
                 "--no-vgg", "--grid", "2", "--out", str(tmp_path / "ev"), "-q"]) == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())["results"]
    assert set(res) == {"sketchcolor", "colorless", "global_transfer", "flat_fill", "patch_nn"}
    # responsiveness: a flat fill of the reference's mean color turns with the reference's hues;
    # a colorless picture has no hue to turn (0)
    assert res["flat_fill"]["responsiveness ↑"] > 0.5
    assert res["colorless"]["responsiveness ↑"] == 0.0
    assert -1.0 <= res["sketchcolor"]["responsiveness ↑"] <= 1.0
    assert (tmp_path / "ev" / "grid.png").is_file() and "| method |" in (tmp_path / "ev" / "results.md").read_text()
