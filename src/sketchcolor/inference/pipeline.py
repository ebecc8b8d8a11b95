"""ColorizePipeline: load an artifact once, colorize any number of (sketch, reference) pairs.

The CLI, the web demo and evaluation all go through this class, so input handling (formats,
letterboxing to the model's size and back, optional sketch extraction) lives in one place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sketchcolor.config import Config
from sketchcolor.data.io import ImageLike, Letterbox, letterbox, load_image, to_gray, to_tensor, to_uint8, unletterbox
from sketchcolor.data.sketch import extract_sketch as extract_sketch_fn
from sketchcolor.errors import SketchColorError
from sketchcolor.models.generator import Colorizer
from sketchcolor.training.checkpoint import load_artifact
from sketchcolor.device import pick_device


class ColorizePipeline:
    """``pipe(sketch, reference) -> uint8 [H, W, 3]`` at the sketch's own size.

    ``sketch`` and ``reference`` are paths, PIL images or arrays of any size; both are
    letterboxed on white to the model's square size (aspect ratio kept) and the output is cropped
    and resized back. With ``extract_sketch=True`` a color or gray picture is first turned into
    line art by the XDoG extractor the model was trained with.
    """

    def __init__(self, model: Colorizer, config: Config, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.size = config.model.image_size

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "auto") -> ColorizePipeline:
        """Load ``folder/config.json`` + ``folder/model.safetensors``."""
        model, cfg, _ = load_artifact(folder)
        return cls(model, cfg, pick_device(device))

    def prepare_sketch(self, sketch: ImageLike, extract_sketch: bool = False) -> tuple[torch.Tensor, Letterbox]:
        """-> ``[1, 1, S, S]`` in [-1, 1] and where the drawing sits in it."""
        rgb = load_image(sketch)
        boxed, box = letterbox(rgb, self.size)
        # the extractor the model was trained with (XDoG with the artifact's data settings)
        line = extract_sketch_fn(boxed, self.config.data) if extract_sketch else to_gray(boxed)
        return to_tensor(line)[None].to(self.device), box

    def prepare_reference(self, reference: ImageLike) -> torch.Tensor:
        """-> ``[1, 3, S, S]`` in [-1, 1]."""
        boxed, _ = letterbox(load_image(reference), self.size)
        return to_tensor(boxed)[None].to(self.device)

    @torch.no_grad()
    def __call__(self, sketch: ImageLike, reference: ImageLike, extract_sketch: bool = False) -> np.ndarray:
        s, box = self.prepare_sketch(sketch, extract_sketch)
        r = self.prepare_reference(reference)
        out = self.model(s, r).image[0]
        return unletterbox(to_uint8(out), box)

    @torch.no_grad()
    def attention(self, sketch: ImageLike, reference: ImageLike, extract_sketch: bool = False) -> torch.Tensor:
        """SCFT attention ``[hw, hw]`` for inspection (rows: sketch cells, columns: reference cells)."""
        s, _ = self.prepare_sketch(sketch, extract_sketch)
        attention = self.model(s, self.prepare_reference(reference)).attention
        if attention is None:
            raise SketchColorError("this model fuses by concatenation (model.fusion=concat): it has no attention map")
        return attention[0].cpu()
