"""The project's own error types: each carries one line a user can act on."""


class SketchColorError(Exception):
    """Base class; the CLI prints ``error: <message>`` and exits non-zero."""


class SaidElsewhere(SketchColorError):
    """An error another process of the same run reports already (training under torchrun: rank 0
    says it once): the CLI exits non-zero without printing it again."""


class ImageError(SketchColorError):
    """An image file could not be read or has an unsupported mode."""


class ConfigError(SketchColorError):
    """A recipe or override is invalid."""


class CheckpointError(SketchColorError):
    """A checkpoint folder is missing, truncated or does not match its config."""


class MissingWeightsError(SketchColorError):
    """A pretrained network needed by a loss is not on disk."""
