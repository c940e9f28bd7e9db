"""Write a north-up grid as a Cloud-Optimized GeoTIFF with rio-cogeo, and validate it.

The profile is rio-cogeo's deflate profile with the floating-point predictor and 512-pixel
blocks; internal overviews are averaged (nodata-aware) so low zooms stay faithful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from cog_assets.formats.readers import Raster

BLOCK_SIZE = 512
OVERVIEW_RESAMPLING = "average"


def cog_profile() -> dict[str, Any]:
    profile = dict(cog_profiles.get("deflate"))
    profile.update(predictor=3, blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE)
    return profile


def source_profile(raster: Raster) -> dict[str, Any]:
    height, width = raster.data.shape
    return {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "height": height,
        "width": width,
        "crs": raster.crs,
        "transform": raster.transform,
        "nodata": raster.nodata,
    }


def write_cog(raster: Raster, destination: Path) -> None:
    """Write ``raster`` to ``destination`` as a COG (destination should be a scratch path)."""
    with MemoryFile() as memory:
        with memory.open(**source_profile(raster)) as source:
            source.write(raster.data, 1)
        with memory.open() as source:
            cog_translate(
                source,
                str(destination),
                cog_profile(),
                in_memory=True,
                quiet=True,
                overview_resampling=OVERVIEW_RESAMPLING,
            )


def statistics(raster: Raster) -> dict[str, float | int]:
    """Summary of valid pixels, for materialization metadata and STAC raster:bands."""
    valid = raster.data[raster.valid]
    stats: dict[str, float | int] = {
        "valid_pixels": int(valid.size),
        "valid_fraction": round(float(valid.size) / raster.data.size, 6),
    }
    if valid.size:
        stats.update(
            minimum=float(valid.min()),
            maximum=float(valid.max()),
            mean=float(np.mean(valid, dtype=np.float64)),
        )
    return stats


def validate(path: Path) -> tuple[bool, list[str], list[str]]:
    """rio-cogeo's validator: (is valid, errors, warnings)."""
    return cog_validate(str(path), quiet=True)
