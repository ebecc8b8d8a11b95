"""Atomic writes: a file or a folder appears complete under its final name, or not at all.

Everything is first written under a temporary name in the destination's own folder (so the final
``os.replace`` / rename stays on one file system) and renamed into place. Temporary names carry
the process id and a random part, so two processes (or two threads) writing the same destination
never share a temporary file. On any failure the temporary file or folder is removed and the
exception propagates unchanged; the previous content of the destination is untouched.

The standard library has the pieces (``os.replace``, ``secrets``) but no such writer, and the
candidates on PyPI (``atomicwrites``: archived) are not worth a dependency for thirty lines.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _file_mode() -> int:
    """The mode a new file gets here (0o666 less the umask), read once at import: the umask can only
    be read by setting it, which is not safe once other threads may create files."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def temporary_name(final: str | Path) -> Path:
    """A fresh name beside ``final``: ``.NAME.PID.RANDOM.tmp`` (hidden, unique per process and call)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library to write to (``save_file``,
    ``PIL.Image.save(tmp, format=...)``, ...); when the block ends without an exception the file is
    renamed onto ``path``, otherwise it is removed. The parent folder is created if needed. The
    file gets the mode any new file gets (:data:`FILE_MODE`): safetensors' ``save_file`` makes its
    files 0600, so others sharing a run folder could read a model's config.json but not its weights.

    The temporary name does not end with ``path``'s suffix: writers that choose the format from
    the extension must be told the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "xb") as fh:
        fh.write(data)
    return path


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode(encoding))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_dir(final: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` on an empty temporary folder beside ``final``, flush its files to
    disk and give them a new file's mode (:data:`FILE_MODE`), then move it to ``final``
    (replacing a folder already there); returns ``final``.

    The temporary folder is ``.NAME.tmp-PID-RANDOM`` (the displaced old one ``.NAME.old-PID-RANDOM``),
    unique per process and call: a process killed mid-write leaves one of those behind, which
    :func:`remove_dead_leftovers` removes once its process is gone."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = final.with_name(f".{final.name}.tmp-{tag}")
    tmp.mkdir()
    try:
        write(tmp)
        for f in tmp.iterdir():  # flush file contents before the rename makes them visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(f, FILE_MODE)  # as atomic_path: some writers (safetensors) make their files 0600
        if final.exists():
            old = final.with_name(f".{final.name}.old-{tag}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# Leftovers of the writers above: folders ``.NAME.tmp-PID[-RANDOM]`` / ``.NAME.old-PID[-RANDOM]``
# (the random part is absent in those of older versions) and files ``.NAME.PID.RANDOM.tmp``.
_LEFTOVER_DIR = re.compile(r"^\..+\.(?:tmp|old)-(\d+)(?:-[0-9a-f]+)?$")
_LEFTOVER_FILE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]+\.tmp$")


def leftover_pid(name: str) -> int | None:
    """The process id in a temporary name of this module's writers; None for any other name."""
    m = _LEFTOVER_DIR.match(name) or _LEFTOVER_FILE.match(name)
    return int(m.group(1)) if m else None


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (this process counts as alive: its temporary files are
    only ever removed by the code that made them)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or a platform without signal 0
        return True
    return True


def remove_dead_leftovers(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` that a process killed mid-write left
    behind; those of a process still running (another writer) are never touched. Returns what was
    removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        pid = leftover_pid(p.name)
        if pid is None or _alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
