"""Atomic writers: the destination is complete or untouched, and no temporary file stays behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from sketchcolor.atomic import atomic_dir, atomic_path, temporary_name, write_bytes_atomic, write_text_atomic


def test_text_and_bytes_replace_the_file_and_leave_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.json"
    assert write_text_atomic(path, "one") == path
    write_bytes_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_temporary_names_are_hidden_and_unique(tmp_path: Path) -> None:
    names = {temporary_name(tmp_path / "a.png").name for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(".a.png.") and n.endswith(".tmp") for n in names)


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_folder_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    final = tmp_path / "model"
    atomic_dir(final, lambda d: (d / "x").write_text("1"))
    atomic_dir(final, lambda d: (d / "y").write_text("2"))
    assert sorted(p.name for p in final.iterdir()) == ["y"]

    def fail(d: Path) -> None:
        (d / "z").write_text("3")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_dir(final, fail)
    assert sorted(p.name for p in final.iterdir()) == ["y"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
