"""The image file formats sketchcolor reads, named once.

A module of its own (no imports) so that :mod:`sketchcolor.config` can take its default from it
without importing :mod:`sketchcolor.data.io` (which loads torch and OpenCV: reading a recipe
must not). :mod:`sketchcolor.data.io` re-exports it beside the reader.
"""

from __future__ import annotations

# Lower-case file suffixes of raster pictures that load_image decodes (Pillow); compared against
# ``path.suffix.lower()`` when folders are listed. Order is the order shown in messages.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")

# Lower-case file suffixes sketchcolor writes pictures to (save_image, `colorize -o`): formats
# Pillow writes losslessly or as a true-color picture. GIF (256 colors) and Pillow's other
# read-only or exotic formats (.xpm, .pdf, ...) are refused with this list.
OUTPUT_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
