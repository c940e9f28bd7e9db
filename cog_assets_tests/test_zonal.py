"""Zonal statistics against an independent reference computed here.

The reference supersamples every cell the AOI may touch (at least 20×20 sub-cells, finer for
AOIs smaller than a cell), keeps the sub-cells whose centres fall inside the polygon (shapely)
and weights them by cos(latitude), the area of a thin cell on the sphere. Cell values come
from the formula the synthetic granule encodes, not from the COG, so orientation mistakes in
the chain would show too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, Polygon

from cog_assets.analysis.aoi import parse_aoi
from cog_assets.analysis.zonal import zonal_statistics
from cog_assets.formats.cog import write_cog
from cog_assets.formats.readers import read_granule

from .granule_files import omi_coordinate_values, make_omi_granule

CELL = 0.25
VALUES = omi_coordinate_values()  # south-up, as the file stores them; fill where no data
FILL = VALUES.min()


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory, datasets) -> Path:
    folder = tmp_path_factory.mktemp("zonal")
    granule = folder / "granule.he5"
    granule.write_bytes(make_omi_granule(VALUES).content)
    path = folder / "coordinates.tif"
    write_cog(read_granule(granule, datasets["omdoao3e"].reader), path)
    return path


def _ring(center: tuple[float, float], rx: float, ry: float, n: int = 9) -> list[tuple[float, float]]:
    """An irregular polygon ring around ``center`` (no edge on a cell boundary)."""
    cx, cy = center
    points = [
        (cx + rx * (1 + 0.2 * math.sin(3 * a)) * math.cos(a), cy + ry * (1 + 0.15 * math.cos(2 * a)) * math.sin(a))
        for a in np.linspace(0, 2 * math.pi, n, endpoint=False) + 0.1
    ]
    return [*points, points[0]]


AREAS = {
    # smaller than one 0.25° pixel, straddling a cell corner (2.0°E, 48.75°N)
    "city": Polygon(_ring((2.003, 48.748), 0.03, 0.02)),
    "country_with_hole": Polygon(_ring((25.0, -29.0), 6.0, 5.0, 13), [_ring((27.0, -29.5), 1.2, 1.0)[::-1]]),
    "islands": MultiPolygon([Polygon(_ring((-60.0, 15.0), 1.5, 1.0)), Polygon(_ring((-55.0, 12.0), 0.8, 1.3))]),
    # drawn the naive way: the edges jump from +172 to -172
    "antimeridian": Polygon([(172.3, -20.1), (-172.4, -21.0), (-171.9, -9.8), (171.8, -10.3), (172.3, -20.1)]),
    "partly_nodata": Polygon(_ring((38.0, 6.0), 5.0, 4.0)),  # the fill box is 20..40°E, 0..10°N
    "all_nodata": Polygon(_ring((30.0, 5.0), 3.0, 2.0)),
    "continent": Polygon(_ring((15.0, 50.0), 16.0, 14.0, 15)),
}


def _cell_values() -> np.ndarray:
    """North-up cell values, NaN where the file has fill."""
    north_up = VALUES[::-1].astype(np.float64)
    return np.where(north_up == FILL, np.nan, north_up)


def _reference(polygon: Polygon | MultiPolygon) -> dict[str, float]:
    """Area-weighted statistics by supersampling; longitudes may run past 180 (unwrapped)."""
    minx, miny, maxx, maxy = polygon.bounds
    n = max(20, math.ceil(CELL / (min(maxx - minx, maxy - miny) / 60)))
    col0, col1 = math.floor((minx + 180) / CELL), math.ceil((maxx + 180) / CELL)
    row0, row1 = math.floor((90 - maxy) / CELL), math.ceil((90 - miny) / CELL)
    sub = (np.arange((col1 - col0) * n) + 0.5) * CELL / n
    xs = -180 + col0 * CELL + sub
    ys = 90 - row0 * CELL - (np.arange((row1 - row0) * n) + 0.5) * CELL / n
    x, y = np.meshgrid(xs, ys)
    weight = shapely.contains_xy(polygon, x, y) * np.cos(np.radians(y))
    cell_weight = weight.reshape(row1 - row0, n, col1 - col0, n).sum(axis=(1, 3))
    cols = np.arange(col0, col1) % 1440  # past 180 wraps to the west edge
    values = _cell_values()[row0:row1][:, cols]
    valid = ~np.isnan(values) & (cell_weight > 0)
    total, valid_weight = cell_weight.sum(), cell_weight[valid].sum()
    out = {"coverage": valid_weight / total, "valid_pixels": int(valid.sum())}
    if valid.any():
        v, w = values[valid], cell_weight[valid]
        mean = float((v * w).sum() / valid_weight)
        out.update(mean=mean, min=v.min(), max=v.max(), stddev=math.sqrt(((v - mean) ** 2 * w).sum() / valid_weight))
    return out


def _unwrap(polygon: Polygon) -> Polygon:
    return Polygon([(x + 360 if x < 0 else x, y) for x, y in polygon.exterior.coords])


@pytest.fixture(scope="module")
def computed(cog: Path) -> dict[str, dict]:
    aois = [
        parse_aoi(f"{name}.geojson", shapely.to_geojson(geometry).encode()) for name, geometry in AREAS.items()
    ]
    with rasterio.open(cog) as source:
        return zonal_statistics(source, aois)


@pytest.mark.parametrize("name", sorted(AREAS))
def test_statistics_match_the_supersampled_reference(computed, name):
    area = AREAS[name]
    expected = _reference(_unwrap(area) if name == "antimeridian" else area)
    got = computed[name]
    assert got["coverage"] == pytest.approx(expected["coverage"], rel=1e-3, abs=1e-9)
    # cells touched by a sliver thinner than a sub-cell escape the reference's count
    assert got["valid_pixels"] == pytest.approx(expected["valid_pixels"], rel=5e-3, abs=2)
    if "mean" in expected:
        assert got["mean"] == pytest.approx(expected["mean"], rel=1e-3)
        # (a sliver cell the sub-cells miss may hold the extreme: a neighbour's value)
        assert (got["min"], got["max"]) == pytest.approx((expected["min"], expected["max"]), rel=1e-3)
        assert got["stddev"] == pytest.approx(expected["stddev"], rel=2e-2, abs=0.05)
        assert got["min"] <= got["median"] <= got["max"]
    else:
        assert got["mean"] is None and got["median"] is None


def test_cases_cover_what_the_acceptance_asks(computed):
    assert computed["city"]["aoi_area_km2"] < 0.25 * 0.25 * 111 * 111 * 0.66  # smaller than its pixel
    assert computed["city"]["valid_pixels"] == 4  # straddles a corner
    assert 0 < computed["partly_nodata"]["coverage"] < 0.8
    assert computed["all_nodata"] == {**computed["all_nodata"], "valid_pixels": 0, "coverage": 0.0, "mean": None}
    assert computed["all_nodata"]["aoi_area_km2"] > 0
    hole = AREAS["country_with_hole"]
    assert _reference(hole)["mean"] != pytest.approx(_reference(Polygon(hole.exterior))["mean"], rel=1e-4)


def test_area_weighting_differs_from_a_plain_cell_mean(computed):
    """The continent's mean is an area mean: cells near its north edge weigh less."""
    area = AREAS["continent"]
    minx, miny, maxx, maxy = area.bounds
    rows = slice(math.floor((90 - maxy) / CELL), math.ceil((90 - miny) / CELL))
    cols = slice(math.floor((minx + 180) / CELL), math.ceil((maxx + 180) / CELL))
    y, x = np.mgrid[rows, cols]
    centres_inside = shapely.contains_xy(area, -180 + (x + 0.5) * CELL, 90 - (y + 0.5) * CELL)
    plain = float(np.nanmean(_cell_values()[rows, cols][centres_inside]))
    assert abs(computed["continent"]["mean"] - plain) > 0.1  # latitudes 36-64°N: weights 0.8 to 0.45


def test_reads_only_the_window_around_the_aoi(cog, monkeypatch):
    """A city reads a window of a few pixels, never the whole 720×1440 grid."""
    windows: list[Window] = []
    real_read = rasterio.io.DatasetReader.read

    def recording_read(self, *args, **kwargs):
        windows.append(kwargs.get("window"))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", recording_read)
    city = parse_aoi("city.geojson", shapely.to_geojson(AREAS["city"]).encode())
    with rasterio.open(cog) as source:
        zonal_statistics(source, [city])
    assert windows and all(w is not None and w.width * w.height <= 16 for w in windows)
