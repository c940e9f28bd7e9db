"""Granules that are GeoTIFFs already (``reader.format: geotiff``), as VEDA's buckets hold.

A file that rio-cogeo's validator accepts as a COG is used as it is: copied byte for byte,
never rewritten (its checksum and description are still made here). Any other GeoTIFF is read
into the platform's grid and written as a COG like every other format. Only north-up grids in
EPSG:4326 are accepted: the items say so, and reprojecting would be a silent change of the data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError
from rio_cogeo.cogeo import cog_validate

from cog_assets.formats.config import ReaderConfig
from cog_assets.formats.errors import GranuleReadError
from cog_assets.formats.raster import CRS, Raster


def _grid(path: Path, source: rasterio.DatasetReader, band: int) -> tuple[Affine, bool]:
    """The transform, and whether rows run south to north; refuses what cannot be placed."""
    if band > source.count:
        raise GranuleReadError(f"{path.name} has {source.count} band(s); reader.band is {band}. Fix reader.band")
    if source.crs is None or source.crs.to_string() != CRS:
        raise GranuleReadError(
            f"{path.name} is in {source.crs or 'no coordinate reference system'}, not {CRS}; reprojecting "
            "would change the data silently, so it is refused. Provide EPSG:4326 files"
        )
    transform = source.transform
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e == 0:
        raise GranuleReadError(f"{path.name}: a rotated or mirrored grid ({tuple(transform)[:6]}) is not supported")
    return transform, transform.e > 0


def read_geotiff(path: Path, config: ReaderConfig) -> Raster:
    """The configured band as a north-up float32 grid; nodata from reader.fill_value or the
    file, and values outside reader.valid_range (when given) are nodata too."""
    band = config.band or 1
    try:
        with rasterio.open(path) as source:
            transform, south_up = _grid(path, source, band)
            data = source.read(band).astype(np.float32)
            file_nodata = source.nodatavals[band - 1]
    except RasterioIOError as exc:
        raise GranuleReadError(f"{path.name} is not a readable GeoTIFF ({exc}); it is corrupt or truncated") from None
    nodata = config.fill_value if config.fill_value is not None else file_nodata
    valid = np.isfinite(data)
    if nodata is not None and not np.isnan(nodata):
        valid &= data != np.float32(nodata)
    if isinstance(config.valid_range, tuple):
        valid &= (data >= config.valid_range[0]) & (data <= config.valid_range[1])
    fill = float(nodata) if nodata is not None else float("nan")
    data = np.where(valid, data, np.float32(fill)).astype(np.float32)
    if south_up:  # row 0 is the south edge: flip to north-up
        data, valid = data[::-1], valid[::-1]
        transform = Affine(transform.a, 0, transform.c, 0, -transform.e, transform.f + transform.e * data.shape[0])
    return Raster(np.ascontiguousarray(data), transform, fill, config.units, np.ascontiguousarray(valid))


def use_as_is(source: Path, config: ReaderConfig, destination: Path) -> bool:
    """Copy ``source`` to ``destination`` unchanged when it can be the granule's COG: a valid
    single-band COG (rio-cogeo), north-up in EPSG:4326, whose band is the one read and whose values need
    no override (reader.fill_value, reader.valid_range). False: it must be converted."""
    if config.format != "geotiff" or (config.band or 1) != 1:
        return False
    if config.fill_value is not None or isinstance(config.valid_range, tuple):
        return False
    valid, _errors, _warnings = cog_validate(str(source), quiet=True)
    if not valid:
        return False
    with rasterio.open(source) as opened:
        _transform, south_up = _grid(source, opened, 1)
        bands = opened.count
    if south_up or bands != 1:  # the item describes one band: a COG of several is converted to it
        return False
    shutil.copyfile(source, destination)
    return True
