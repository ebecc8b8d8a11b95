"""Reading the project's small JSON files (a model's config.json, a fixes file, a color book, a run
folder's config) with one set of failure messages: every way such a file can be unusable (missing,
too large, unreadable, not UTF-8, not JSON, nested too deeply, an integer of more digits than
Python converts) becomes one error of the caller's type that names the file and what it should be.

The standard library's ``json`` does the parsing; what is written here is only the mapping of its
and the OS's exceptions to one-line messages, which each reader had repeated with small
differences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sketchcolor.errors import SketchColorError

MAX_JSON_BYTES = 1 << 20  # the project's JSON files are a few KiB; anything over 1 MiB is refused unread


def parse_json(text: str, where: str | Path, what: str, error: type[SketchColorError] = SketchColorError,
               max_bytes: int = MAX_JSON_BYTES) -> Any:
    """``text`` -> the parsed value; ``where`` names its file (or where the text came from, e.g. an
    ONNX file's metadata) and ``what`` what it should be ("config", "color book") in the message of
    the ``error`` raised when it is not JSON or longer than ``max_bytes`` characters."""
    if len(text) > max_bytes:
        raise error(f"{where}: {len(text):,} bytes is over the limit of {max_bytes:,} bytes for a {what}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not a valid {what}: not JSON ({e.msg} at line {e.lineno})") from None
    except ValueError as e:  # an integer literal of more digits than Python converts
        raise error(f"{where}: not a valid {what}: not JSON ({str(e).splitlines()[0][:120]})") from None
    except RecursionError:
        raise error(f"{where}: not a valid {what}: not JSON (nested too deeply)") from None


def read_json(path: str | Path, what: str, error: type[SketchColorError] = SketchColorError,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read and parse the JSON file ``path`` (see :func:`parse_json`); the size is checked before
    the file is read, and at most ``max_bytes + 1`` bytes are read (a device such as /dev/zero or a
    file that grows reports a size that says nothing)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {size:,} bytes is over the limit of {max_bytes:,} bytes for a {what}")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise error(f"{path}: more than {max_bytes:,} bytes, over the limit for a {what}")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a valid {what}: not UTF-8 text") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({(e.strerror or str(e)).lower()})") from None
    return parse_json(text, path, what, error, max_bytes)
