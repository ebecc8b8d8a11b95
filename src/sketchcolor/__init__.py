"""sketchcolor: reference-based sketch colorization (Lee et al., CVPR 2020)."""

from sketchcolor.config import Config, load_config
from sketchcolor.version import __version__

__all__ = ["Config", "load_config", "ColorizePipeline", "__version__"]


def __getattr__(name: str):  # imported late for speed: `import sketchcolor` must not import torch models
    if name == "ColorizePipeline":
        from sketchcolor.inference.pipeline import ColorizePipeline

        return ColorizePipeline
    raise AttributeError(name)
