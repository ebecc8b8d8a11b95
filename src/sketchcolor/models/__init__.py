"""Networks: encoders E_s / E_r, SCFT, the colorizer G and the discriminator D."""

from sketchcolor.models.discriminator import PatchDiscriminator
from sketchcolor.models.generator import Colorizer, ColorizerOutput

__all__ = ["Colorizer", "ColorizerOutput", "PatchDiscriminator"]
