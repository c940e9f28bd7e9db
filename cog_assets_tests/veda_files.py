"""Synthetic objects named like VEDA's ``no2-monthly`` bucket, and helpers to put them in S3.

VEDA's files are ``OMI_trno2_0.10x0.10_<YYYYMM>_Col3_V4.nc.tif``: monthly tropospheric NO2
columns (molecules/cm^2), float32, EPSG:4326, north-up. Here on a 0.5° grid (360 x 720, small
enough for tests and wider than 512 pixels, so a striped file is not a COG): either a COG made
with rio-cogeo, as VEDA publishes them, or a plain striped GeoTIFF, which must be converted.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

NO2_FILL = np.float32(-1.2676506e30)
RESOLUTION = 0.5


def no2_name(year: int, month: int) -> str:
    return f"OMI_trno2_0.10x0.10_{year:04d}{month:02d}_Col3_V4.nc.tif"


def no2_values(seed: int = 1, rows: int = 360, cols: int = 720) -> np.ndarray:
    """A smooth field of 1e15-1e16 molecules/cm^2 with a band of fill (no retrieval)."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(90 - RESOLUTION / 2, -90 + RESOLUTION / 2, rows)[:, None]
    lon = np.linspace(-180 + RESOLUTION / 2, 180 - RESOLUTION / 2, cols)[None, :]
    field = 5e15 + 4e15 * np.cos(np.radians(lat)) * np.sin(np.radians(lon) * (1 + seed % 3))
    values = (field + rng.normal(0, 1e14, (rows, cols))).astype(np.float32)
    values[: rows // 12] = NO2_FILL  # polar night
    return values


def _profile(values: np.ndarray) -> dict:
    rows, cols = values.shape
    return {"driver": "GTiff", "dtype": "float32", "count": 1, "height": rows, "width": cols,
            "crs": "EPSG:4326", "transform": from_origin(-180, 90, RESOLUTION, RESOLUTION), "nodata": float(NO2_FILL)}


def plain_geotiff(values: np.ndarray, path: Path) -> Path:
    """A striped, untiled GeoTIFF without overviews: not a COG."""
    with rasterio.open(path, "w", **_profile(values)) as out:
        out.write(values, 1)
    return path


def cog(values: np.ndarray, path: Path) -> Path:
    """A COG as VEDA makes them (rio-cogeo, deflate)."""
    with MemoryFile() as memory:
        with memory.open(**_profile(values)) as source:
            source.write(values, 1)
        with memory.open() as source:
            cog_translate(source, str(path), cog_profiles.get("deflate"), in_memory=True, quiet=True)
    return path


def put(client, bucket: str, key: str, path_or_bytes: Path | bytes) -> datetime:
    """Upload one object; returns its LastModified."""
    body = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    client.put_object(Bucket=bucket, Key=key, Body=body)
    return client.head_object(Bucket=bucket, Key=key)["LastModified"].astimezone(timezone.utc)


def after_second_of(moment: datetime, timeout: float = 5.0) -> None:
    """Return once the clock is past ``moment``'s second: S3's LastModified has whole seconds,
    so an overwrite must happen in a later second to be a later revision."""
    deadline = time.monotonic() + timeout
    while datetime.now(timezone.utc).replace(microsecond=0) <= moment.replace(microsecond=0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the clock did not pass {moment}")
        time.sleep(0.05)
