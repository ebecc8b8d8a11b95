"""Inference: the one door for sketch + reference -> colored image."""

from sketchcolor.inference.pipeline import ColorizePipeline

__all__ = ["ColorizePipeline"]
