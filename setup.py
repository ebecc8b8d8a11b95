"""Build hook: ship the default weights, the demo's examples and the tiny recipe inside the wheel.

The files stay where the repository keeps them; a regular build copies ``SHIPPED`` (globs relative
to the repository root) to ``sketchcolor/_shipped/<same path>`` in the wheel, where
``sketchcolor.shipped.shipped_path`` finds them through importlib.resources. An editable install
copies nothing and reads the checkout. MANIFEST.in carries the same files into an sdist.

Why a hook rather than ``package-dir``/``package-data`` in pyproject.toml: a package mapped onto
``weights/default`` is ignored by ``packages.find`` (the wheel silently lacks it), so every package
would have to be listed by hand, and any ``package-dir`` entry besides ``""`` turns the editable
install from a plain ``.pth`` to src/ into an import hook.
"""

from __future__ import annotations

import shutil
from glob import glob
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("weights/default/*", "examples/pairs.csv", "examples/ATTRIBUTION.md", "examples/sketches/*",
           "examples/references/*", "configs/tiny.yaml")


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        dest = Path(self.build_lib, "sketchcolor", "_shipped")
        shutil.rmtree(dest, ignore_errors=True)  # no stale files from an earlier build
        for pattern in SHIPPED:
            found = sorted(p for p in map(Path, glob(str(ROOT / pattern))) if p.is_file())
            if not found:  # a wheel without its weights is the failure this hook exists to prevent
                raise FileNotFoundError(f"{ROOT / pattern}: nothing to ship")
            for src in found:
                target = dest / src.relative_to(ROOT)
                self.mkpath(str(target.parent))
                self.copy_file(str(src), str(target))


setup(cmdclass={"build_py": BuildPyWithShipped})
