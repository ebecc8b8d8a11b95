"""jsonfile: every way a small JSON file can be unusable is one error of the caller's type naming
the file and what it should have been."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sketchcolor.errors import CheckpointError, ConfigError, SketchColorError
from sketchcolor.jsonfile import parse_json, read_json


def test_reads_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"a": [1, 2.5, "x"]}', encoding="utf-8")
    assert read_json(path, "thing") == {"a": [1, 2.5, "x"]}


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not a valid thing: not JSON (Expecting property name enclosed in double quotes at line 1)"),
    (b"\xff\xfe{}", "not a valid thing: not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "not a valid thing: not JSON (nested too deeply)"),
    (b'{"v": ' + b"1" * 5000 + b"}", "not a valid thing: not JSON (Exceeds the limit"),
    (b"x" * 2000, "2,000 bytes is over the limit of 1,000 bytes for a thing"),
])
def test_bad_content_is_one_line_of_the_callers_type(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_json(path, "thing", CheckpointError, max_bytes=1000 if len(content) == 2000 else 1 << 20)
    text = str(info.value)
    assert text.startswith(f"{path}: {message}"), text
    assert "\n" not in text and len(text) < 300


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SketchColorError, match=r"missing\.json: no such color book$"):
        read_json(tmp_path / "missing.json", "color book")
    with pytest.raises(SketchColorError, match=r": cannot read the color book \(is a directory\)$"):
        read_json(tmp_path, "color book")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0)
    try:
        with pytest.raises(SketchColorError, match=r"locked\.json: cannot read the fixes file \(permission denied\)$"):
            read_json(path, "fixes file")
    finally:
        path.chmod(0o600)


def test_parse_names_where_the_text_came_from() -> None:
    assert parse_json("[1]", "model.onnx (metadata)", "config") == [1]
    with pytest.raises(SketchColorError, match=r"^model\.onnx \(metadata\): not a valid config: not JSON"):
        parse_json("[1", "model.onnx (metadata)", "config")
    with pytest.raises(SketchColorError, match=r"^x: 11 bytes is over the limit of 10 bytes for a config$"):
        parse_json("[" + "1," * 4 + "1]", "x", "config", max_bytes=10)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_that_reports_size_zero_is_not_read_without_limit() -> None:
    # /dev/zero stats as 0 bytes and never ends: the reader stops after the limit
    with pytest.raises(ConfigError, match=r"^/dev/zero: more than 1,024 bytes, over the limit for a config$"):
        read_json("/dev/zero", "config", ConfigError, max_bytes=1024)
