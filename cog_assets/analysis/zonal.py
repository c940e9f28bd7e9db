"""Zonal statistics of one COG over AOIs, computed by exactextract.

exactextract weights each pixel by the fraction of it the polygon covers (exactly, not by
pixel centres), which is what makes a city smaller than one 0.25° pixel, or a coastline,
come out right. On a geographic grid the weight is also the pixel's area on the sphere
(``coverage_weight=area_spherical_m2``): a 0.25° cell at 60° latitude weighs half a cell at the
equator, so a continent's mean is an area mean, not a mean of cells. exactextract reads, per
AOI, only the window of the raster that the AOI's bounds touch (tiles of a COG, ranged GETs
on S3), never the whole file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import rasterio
from exactextract import exact_extract

from cog_assets.analysis.aoi import Aoi

# one row per (AOI, COG); the order of the table's statistics columns
STATISTICS = ("mean", "min", "max", "stddev", "median", "valid_pixels", "coverage", "aoi_area_km2")


def operations(geographic: bool) -> list[str]:
    """exactextract operations; ``area`` counts every covered cell (nodata as 0) for coverage."""
    weight = "area_spherical_m2" if geographic else "fraction"
    return [
        f"mean=mean(coverage_weight={weight})",
        "min=min",
        "max=max",
        f"stddev=stdev(coverage_weight={weight})",
        f"median=median(coverage_weight={weight})",
        "valid_pixels=count(coverage_weight=none)",
        f"valid_area=count(coverage_weight={weight})",
        f"area=count(coverage_weight={weight},default_value=0)",
    ]


def _number(value: Any) -> float | None:
    """exactextract's empty results (NaN, None) as None: a missing value, not a number."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _row(properties: dict[str, Any], geographic: bool) -> dict[str, Any]:
    area, valid_area = _number(properties.get("area")) or 0.0, _number(properties.get("valid_area")) or 0.0
    return {
        "mean": _number(properties.get("mean")),
        "min": _number(properties.get("min")),
        "max": _number(properties.get("max")),
        "stddev": _number(properties.get("stddev")),
        "median": _number(properties.get("median")),
        "valid_pixels": int(_number(properties.get("valid_pixels")) or 0),
        "coverage": valid_area / area if area > 0 else 0.0,
        "aoi_area_km2": area / 1e6 if geographic else None,
    }


def zonal_statistics(source: rasterio.DatasetReader, aois: Sequence[Aoi]) -> dict[str, dict[str, Any]]:
    """Statistics of band 1 of ``source`` for each AOI, by AOI id.

    An AOI over nodata only (or outside the raster) gets ``valid_pixels`` 0, ``coverage`` 0
    and no mean: a row saying there was nothing to measure, not a failure.
    """
    if not aois:
        return {}
    geographic = bool(source.crs and source.crs.is_geographic)
    features = [aoi.feature() for aoi in aois]
    results = exact_extract(
        source, features, operations(geographic), include_cols=["aoi_id"], output="geojson"
    )
    return {r["properties"]["aoi_id"]: _row(r["properties"], geographic) for r in results}


def gdal_options(endpoint_url: str | None = None) -> dict[str, str]:
    """GDAL settings for reading COGs by URI: no directory listing on open (one LIST per COG
    on S3 otherwise) and, for an S3-compatible server (AWS_ENDPOINT_URL), its address."""
    options = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff"}
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        options.update(
            AWS_S3_ENDPOINT=parsed.netloc,
            AWS_HTTPS="YES" if parsed.scheme == "https" else "NO",
            AWS_VIRTUAL_HOSTING="FALSE",
        )
    return options
