"""A wheel of the working tree installs into a fresh venv and colorizes with the shipped weights.

The wheel is built from a copy of the tree (so no build/ or egg-info lands in the checkout),
offline and without build isolation (the venv's setuptools, pinned by the dev extra). The fresh venv
gets no dependency from the network: a ``.pth`` line puts this venv's site-packages on its path,
which brings torch & co. but not the editable install (a path line does not run the ``.pth`` files
inside that folder), so ``sketchcolor`` can only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SKETCH = ROOT / "examples" / "testset" / "1F31D_line.png"
REFERENCE = ROOT / "examples" / "testset" / "1F3AA_color.png"
# Not part of a build: VCS data, the venv, local data and run outputs, earlier builds.
SKIP_TOP = {".git", ".venv", "build", "dist", "data", "runs", "outputs", "logs", ".cache", "node_modules",
            ".pytest_cache", ".hypothesis"}


def _run(cmd: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _copy_tree(dst: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return skip | (SKIP_TOP & set(names) if Path(folder) == ROOT else set())

    return Path(shutil.copytree(ROOT, dst, ignore=ignore))


def test_wheel_install_colorizes_with_shipped_weights(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")

    src = _copy_tree(tmp_path / "src")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", tmp_path / "dist", src], cwd=tmp_path, env=env)
    (wheel,) = (tmp_path / "dist").glob("sketchcolor-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "deps_from_dev_venv.pth").write_text("".join(f"{p}\n" for p in ours))
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel],
         cwd=tmp_path, env=env)

    where = _run([py, "-c", "import sketchcolor; print(sketchcolor.__file__)"], tmp_path, env).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where

    out = tmp_path / "work" / "out.png"
    out.parent.mkdir()
    _run([venv / "bin" / "sketchcolor", "colorize", "--sketch", SKETCH, "--reference", REFERENCE,
          "-o", "out.png", "--device", "cpu", "-q"], cwd=out.parent, env=env)
    with Image.open(out) as im, Image.open(SKETCH) as sk:
        assert im.format == "PNG" and im.size == sk.size

    # the wheel carries all of weights/default, and the demo's files come from it too
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (ROOT / "weights" / "default").iterdir():
        assert f"sketchcolor/_shipped/weights/default/{f.name}" in names
    probe = ("from sketchcolor.shipped import shipped_path as s; "
             "print(s('weights/default')); print(s('examples') / 'pairs.csv'); print(s('configs/tiny.yaml'))")
    for line in _run([py, "-c", probe], tmp_path, env).stdout.split():
        assert Path(line).exists() and Path(line).resolve().is_relative_to(venv.resolve()), line
