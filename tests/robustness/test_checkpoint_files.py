"""Issue 4, checkpoints: truncated, tampered, too-new and mismatched files each give one clear
CheckpointError; a pickle bomb in trainer_state.pt is refused without running."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

from sketchcolor.cli import main
from sketchcolor.config import FORMAT_VERSION
from sketchcolor.errors import CheckpointError
from sketchcolor.inference.pipeline import ColorizePipeline
from sketchcolor.models.serialization import load_artifact, save_artifact
from sketchcolor.training.checkpoint import load_trainer_state

WEIGHTS = "model.safetensors"


def _header_len(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


def _flip_header_byte(folder: Path) -> None:
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[8 + _header_len(data) // 2] ^= 0xFF  # inside the JSON header
    (folder / WEIGHTS).write_bytes(bytes(data))


def _flip_length_byte(folder: Path) -> None:
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[3] ^= 0x40  # the header length field: claims a header far longer than the file
    (folder / WEIGHTS).write_bytes(bytes(data))


def _header_claims_more_data(folder: Path) -> None:
    data = (folder / WEIGHTS).read_bytes()
    n = _header_len(data)
    header = json.loads(data[8:8 + n])
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    header[last]["data_offsets"][1] += 4096  # the last tensor claims 4 KB past the end
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (folder / WEIGHTS).write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n:])


def _flip_data_byte(folder: Path) -> None:
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-7] ^= 0x01  # one bit of one weight: only the recorded SHA-256 can tell
    (folder / WEIGHTS).write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) * 2 // 3])


def _truncate_last_byte(folder: Path) -> None:
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[:-1])


def _empty_weights(folder: Path) -> None:
    (folder / WEIGHTS).write_bytes(b"")


def _no_weights(folder: Path) -> None:
    (folder / WEIGHTS).unlink()


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        raw = json.loads((folder / "config.json").read_text())
        change(raw)
        (folder / "config.json").write_text(json.dumps(raw))
    return edit


def _set_model(**kw) -> Callable[[dict], None]:
    return lambda raw: raw["config"]["model"].update(kw)


CASES = [
    ("flipped_header_byte", _flip_header_byte, WEIGHTS, "corrupt or truncated weights"),
    ("flipped_header_length", _flip_length_byte, WEIGHTS, "corrupt or truncated weights"),
    ("header_claims_more_data", _header_claims_more_data, WEIGHTS, "corrupt or truncated weights"),
    ("flipped_data_bit", _flip_data_byte, WEIGHTS, "contents changed since it was saved"),
    ("truncated", _truncate, WEIGHTS, "corrupt or truncated weights"),
    ("truncated_last_byte", _truncate_last_byte, WEIGHTS, "corrupt or truncated weights"),
    ("empty_weights", _empty_weights, WEIGHTS, "corrupt or truncated weights"),
    ("missing_weights", _no_weights, WEIGHTS, "missing weights file"),
    ("newer_format_version", _edit_config(lambda r: r.update(format_version=FORMAT_VERSION + 1)), "config.json",
     f"format version {FORMAT_VERSION + 1} is newer than this sketchcolor reads ({FORMAT_VERSION}); upgrade sketchcolor"),
    ("format_version_string", _edit_config(lambda r: r.update(format_version="1")), "config.json",
     "is not a valid version number"),
    ("other_channel_counts", _edit_config(_set_model(encoder_channels=[4, 4, 8, 8, 16, 32])), WEIGHTS,
     "weights do not match config.json"),
    ("absurd_channel_counts", _edit_config(_set_model(encoder_channels=[100_000] * 6)), WEIGHTS,
     "weights do not match config.json"),
    ("more_res_blocks", _edit_config(_set_model(num_res_blocks=2)), WEIGHTS, "tensors the config needs are not in the file"),
    ("unknown_config_key", _edit_config(_set_model(layers=3)), "config.json", "unknown key(s) in 'model': layers"),
    ("config_not_json", lambda f: (f / "config.json").write_text("{not json"), "config.json", "not a valid config: not JSON"),
    ("config_missing", lambda f: (f / "config.json").unlink(), "config.json", "missing"),
]


@pytest.mark.parametrize(("name", "damage", "named", "message"), CASES, ids=[c[0] for c in CASES])
def test_damaged_artifact_is_one_clear_error(name: str, damage: Callable[[Path], None], named: str, message: str,
                                            tiny_artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / name
    shutil.copytree(tiny_artifact, folder)
    damage(folder)
    with pytest.raises(CheckpointError) as info:
        load_artifact(folder)
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    assert text.startswith(str(folder / named)), text
    assert message in text, text


def test_damaged_weights_through_the_cli(tiny_artifact: Path, good_pictures: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_artifact, folder)
    _flip_data_byte(folder)
    rc = main(["colorize", "--sketch", str(good_pictures[0]), "--reference", str(good_pictures[1]),
               "-o", str(tmp_path / "o.png"), "--weights", str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {folder / WEIGHTS}: contents changed"), err
    assert not (tmp_path / "o.png").exists()


def test_intact_artifact_still_loads(tiny_artifact: Path) -> None:
    ColorizePipeline.from_pretrained(tiny_artifact, device="cpu")
    assert "weights_sha256" in json.loads((tiny_artifact / "config.json").read_text())


def test_artifact_without_recorded_checksum_loads(tiny_artifact: Path, tmp_path: Path) -> None:
    """Artifacts written before the checksum existed (or by hand) still load."""
    folder = tmp_path / "old"
    shutil.copytree(tiny_artifact, folder)
    _edit_config(lambda r: r.pop("weights_sha256"))(folder)
    load_artifact(folder)


def test_nan_weights_are_refused_on_save_and_on_load(tiny_artifact: Path, tmp_path: Path) -> None:
    model, cfg, _ = load_artifact(tiny_artifact)
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    with pytest.raises(CheckpointError, match="refusing to save weights with NaN/inf"):
        save_artifact(tmp_path / "poisoned", model, cfg)
    assert not (tmp_path / "poisoned").exists() and not list(tmp_path.iterdir())
    # a file written by hand (no checksum) with a NaN in it
    folder = tmp_path / "by_hand"
    shutil.copytree(tiny_artifact, folder)
    _edit_config(lambda r: r.pop("weights_sha256"))(folder)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    with pytest.raises(CheckpointError, match="NaN/inf"):
        load_artifact(folder)


# ------------------------------------------------------------------ trainer state


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _state_folder(tmp_path: Path, state) -> Path:
    folder = tmp_path / "step_00000001"
    folder.mkdir()
    torch.save(state, folder / "trainer_state.pt")
    return folder


@pytest.mark.parametrize("where", ["top_level", "inside_a_real_looking_state"])
def test_pickle_bomb_in_trainer_state_is_refused_and_never_runs(where: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = _Payload(marker)
    state = bomb if where == "top_level" else {"step": 1, "elapsed": 0.0, "discriminator": {"w": torch.zeros(2)},
                                               "opt_g": {}, "opt_d": {}, "rng_cpu": torch.get_rng_state(), "x": bomb}
    folder = _state_folder(tmp_path, state)
    with pytest.raises(CheckpointError, match="trainer_state.pt: unreadable or unsafe trainer state"):
        load_trainer_state(folder)
    assert not marker.exists()
    # The bomb is real: an unsafe load runs it (which is what weights_only=True prevents).
    torch.load(folder / "trainer_state.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(("state", "message"), [
    ([1, 2, 3], "not a dict"),
    ({"step": 3}, "'discriminator' is missing"),
    ({"step": "3", "discriminator": {}, "opt_g": {}, "opt_d": {}, "rng_cpu": torch.zeros(1)}, "'step' is missing or not of type int"),
], ids=["list", "missing_keys", "step_not_int"])
def test_trainer_state_of_the_wrong_shape(state, message: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_trainer_state(_state_folder(tmp_path, state))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_trainer_state(damage: str, tmp_path: Path) -> None:
    folder = _state_folder(tmp_path, {"step": 1, "discriminator": {"w": torch.randn(64)}, "opt_g": {}, "opt_d": {},
                                      "rng_cpu": torch.get_rng_state()})
    path = folder / "trainer_state.pt"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(500), "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="unreadable or unsafe trainer state"):
        load_trainer_state(folder)
