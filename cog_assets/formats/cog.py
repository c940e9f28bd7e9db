"""Write a north-up grid as a Cloud-Optimized GeoTIFF with GDAL's COG driver, and validate it
with rio-cogeo.

The profile is deflate with the floating-point predictor and 512-pixel blocks; internal
overviews are averaged (nodata-aware) so low zooms stay faithful, and go down until the
smallest fits in one block. GDAL's COG driver writes the array straight to that layout
(rio-cogeo's translate writes a temporary GeoTIFF and copies it; same pixels, same
compression, measured in bench/cog.py), and can compress with several threads when a run has
more cores than granules in flight. rio-cogeo's validator checks every COG either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import array_bounds
from rio_cogeo.cogeo import cog_validate

from cog_assets.formats.readers import Raster
from cog_assets.store.objects import sha256_of

SIGNIFICANT_DIGITS = 6
BLOCK_SIZE = 512
OVERVIEW_RESAMPLING = "average"


def cog_options(threads: int = 1) -> dict[str, Any]:
    """GDAL COG driver creation options: the profile every COG of the platform has."""
    return {
        "BLOCKSIZE": BLOCK_SIZE,
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "YES",  # floating-point predictor (3) for float32
        "OVERVIEW_RESAMPLING": OVERVIEW_RESAMPLING.upper(),
        "NUM_THREADS": max(1, threads),
    }


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


def write_cog(raster: Raster, destination: Path, threads: int = 1) -> None:
    """Write ``raster`` to ``destination`` as a COG (destination should be a scratch path);
    ``threads`` compress blocks in parallel inside GDAL."""
    profile = {**source_profile(raster), "driver": "COG", **cog_options(threads)}
    with rasterio.open(destination, "w", **profile) as cog:
        cog.write(raster.data, 1)


def _significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    return float(f"{value:.{digits}g}")


def statistics(data: np.ndarray, valid: np.ndarray) -> dict[str, float | int]:
    """Summary of the valid pixels, rounded once (6 significant digits): the same numbers go
    to the materialization, the STAC item's raster:bands and the day manifest."""
    values = data[valid]
    stats: dict[str, float | int] = {
        "valid_pixels": int(values.size),
        "valid_fraction": round(float(values.size) / data.size, 6),
    }
    if values.size:
        stats.update(
            minimum=_significant(float(values.min())),
            maximum=_significant(float(values.max())),
            mean=_significant(float(np.mean(values, dtype=np.float64))),
        )
    return stats


@dataclass(frozen=True)
class CogInfo:
    """What a STAC item says of its COG, known when the COG is written (no re-read)."""

    shape: tuple[int, int]
    transform: list[float]
    bounds: tuple[float, float, float, float]
    nodata: float | None
    statistics: dict[str, float | int]
    size: int
    sha256: str
    dtype: str = "float32"  # what write_cog writes; a COG used as it is keeps its own


def info_of(raster: Raster, path: Path, sha256: str) -> CogInfo:
    """The written COG's description from the grid it was written from."""
    height, width = raster.data.shape
    bounds = array_bounds(height, width, raster.transform)
    return CogInfo((height, width), list(raster.transform)[:6], (bounds[0], bounds[1], bounds[2], bounds[3]),
                   raster.nodata, statistics(raster.data, raster.valid), path.stat().st_size, sha256)


def read_info(path: Path) -> CogInfo:
    """The description of a COG on disk (``stac_item`` re-run alone, or a COG used as it is)."""
    with rasterio.open(path) as cog:
        data = cog.read(1)
        valid = np.isfinite(data)
        if cog.nodata is not None and not np.isnan(cog.nodata):  # fill, compared in the file's own type
            valid &= data != np.asarray(cog.nodata).astype(data.dtype)
        return CogInfo((cog.height, cog.width), list(cog.transform)[:6], tuple(cog.bounds), cog.nodata,
                       statistics(data, valid), path.stat().st_size, sha256_of(path), cog.dtypes[0])


def validate(path: Path) -> tuple[bool, list[str], list[str]]:
    """rio-cogeo's validator: (is valid, errors, warnings)."""
    return cog_validate(str(path), quiet=True)
