"""A PNG preview of a COG, rendered with the dataset's colormap and value range (rio-tiler).

The same rendering goes into the STAC collection's ``renders`` (what a tiler such as titiler
uses), so the thumbnail, the UI preview and a map agree. The preview reads the COG's smallest
overview that is large enough, not the full-resolution data; nodata is transparent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rio_tiler.colormap import cmap
from rio_tiler.io import Reader
from rio_tiler.models import ImageData

THUMBNAIL_SIZE = 256  # the STAC ``thumbnail`` asset, longest side in pixels
PREVIEW_SIZE = 256  # the Dagster UI's inline preview (WebP: ~3 KB per materialization event)


def render_images(cog_path: Path, colormap: str, value_range: tuple[float, float]) -> tuple[bytes, bytes]:
    """The thumbnail (PNG) and the UI preview (WebP) from one read of the COG's overview: both
    are the same size, so reading it twice would only do the same work again."""
    image = _read(cog_path, value_range, max(THUMBNAIL_SIZE, PREVIEW_SIZE))
    palette = cmap.get(colormap)
    with np.errstate(invalid="ignore", over="ignore"):
        return image.render(img_format="PNG", colormap=palette), image.render(img_format="WEBP", colormap=palette, quality=75)


def render_png(cog_path: Path, colormap: str, value_range: tuple[float, float], max_size: int = THUMBNAIL_SIZE) -> bytes:
    """The COG's first band rescaled from ``value_range`` to 0-255 and coloured by ``colormap``."""
    return _render(cog_path, colormap, value_range, max_size, "PNG")


def render_preview(cog_path: Path, colormap: str, value_range: tuple[float, float]) -> bytes:
    """The same picture, small and lossy (WebP keeps transparency), to inline in the event log."""
    return _render(cog_path, colormap, value_range, PREVIEW_SIZE, "WEBP", quality=75)


def _read(cog_path: Path, value_range: tuple[float, float], max_size: int) -> ImageData:
    """The first band at most ``max_size`` pixels long, rescaled from ``value_range`` to 0-255."""
    with Reader(str(cog_path)) as source:
        image = source.preview(indexes=1, max_size=max_size)
    with np.errstate(invalid="ignore", over="ignore"):  # nodata pixels are masked (transparent)
        image.rescale(in_range=[value_range])
    return image


def _render(cog_path: Path, colormap: str, value_range: tuple[float, float], max_size: int, fmt: str, **options) -> bytes:
    image = _read(cog_path, value_range, max_size)
    with np.errstate(invalid="ignore", over="ignore"):
        return image.render(img_format=fmt, colormap=cmap.get(colormap), **options)


def known_colormap(name: str) -> bool:
    return name in cmap.list()
