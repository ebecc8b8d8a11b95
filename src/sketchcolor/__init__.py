"""sketchcolor: reference-based sketch colorization (Lee et al., CVPR 2020)."""

__version__ = "0.1.0"

from sketchcolor.config import Config, load_config  # noqa: E402

__all__ = ["Config", "load_config", "ColorizePipeline", "__version__"]


def __getattr__(name: str):  # lazy: importing the package must not import torch models
    if name == "ColorizePipeline":
        from sketchcolor.inference.pipeline import ColorizePipeline

        return ColorizePipeline
    raise AttributeError(name)
