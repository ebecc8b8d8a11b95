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


def test_files_written_through_a_temporary_name_get_a_new_files_mode(tmp_path: Path) -> None:
    """safetensors' save_file makes its files 0600: a model's weights must be as readable as its
    config.json (the mode any new file gets here)."""
    import os

    import torch
    from safetensors.torch import save_file

    from sketchcolor.atomic import FILE_MODE

    mask = os.umask(0o022)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask
    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))
    text = write_text_atomic(tmp_path / "c.json", "{}")
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == text.stat().st_mode & 0o777 == FILE_MODE
    folder = atomic_dir(tmp_path / "model", lambda tmp: save_file({"a": torch.zeros(2)}, str(tmp / "m.safetensors")))
    assert (folder / "m.safetensors").stat().st_mode & 0o777 == FILE_MODE
