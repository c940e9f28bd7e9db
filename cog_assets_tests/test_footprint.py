"""Footprints follow the STAC/GeoJSON rules: a shape crossing the antimeridian has a bbox with
west > east and a geometry cut into a MultiPolygon; a shape around a pole reaches ±90."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, shape

from cog_assets.sources.cmr.records import parse_umm_item
from cog_assets.stac.api import covering_extent

from .granule_files import FIXTURES

MODIS = FIXTURES / "cmr" / "python_cmr__MOD02QKM__granules.umm_json__search_after_chain.json"


def _modis_item(index: int) -> dict:
    """The recorded MOD02QKM granules, in the order of the recorded pages."""
    pages = json.loads(MODIS.read_text())["interactions"]
    return [item for page in pages for item in page["response"]["body"]["items"]][index]


def _item_with(geometry: dict) -> dict:
    """A real UMM-G item (GPM) whose spatial extent is replaced by ``geometry``."""
    body = json.loads((FIXTURES / "cmr" / "earthaccess__GPM_3IMERGHH_G1618495041-GES_DISC__granules.umm_json.json").read_text())
    item = json.loads(json.dumps(body["items"][0]))
    item["umm"]["SpatialExtent"] = {"HorizontalSpatialDomain": {"Geometry": geometry}}
    return item


def _polygon(*points: tuple[float, float]) -> dict:
    ring = [*points, points[0]]
    return {"GPolygons": [{"Boundary": {"Points": [{"Longitude": x, "Latitude": y} for x, y in ring]}}]}


def _assert_geojson_plane(geometry: dict) -> None:
    """Every coordinate on the -180..180 / -90..90 plane and the shape valid there."""
    geom = shape(geometry)
    assert geom.is_valid, shapely.is_valid_reason(geom)
    coords = np.array([c for part in getattr(geom, "geoms", [geom]) for c in part.exterior.coords])
    assert np.all(np.abs(coords[:, 0]) <= 180) and np.all(np.abs(coords[:, 1]) <= 90)


def test_polar_swath_bbox_reaches_the_pole_across_all_longitudes():
    # MOD02QKM G1462754234: four vertices whose longitudes wind once around the north pole
    record = parse_umm_item(_modis_item(0))
    assert record.bbox == (-180.0, 66.835767, 180.0, 90.0)
    geom = shape(record.geometry)
    _assert_geojson_plane(record.geometry)
    assert geom.covers(Point(0, 89.9)) and geom.covers(Point(179.9, 85)) and geom.covers(Point(-100, 80))
    assert not geom.covers(Point(0, 60))


def test_antimeridian_swath_is_cut_in_two_with_west_greater_than_east():
    # MOD02QKM G1462754407: from 145°E across 180° to 146°W
    record = parse_umm_item(_modis_item(1))
    west, south, east, north = record.bbox
    assert (west, south, east) == (145.201467, 53.551985, -145.975778)
    # the great-circle edge between the two northern vertices bows poleward past both
    assert 76.970977 < north < 85
    assert record.geometry["type"] == "MultiPolygon"
    _assert_geojson_plane(record.geometry)
    halves = [shape({"type": "Polygon", "coordinates": c}) for c in record.geometry["coordinates"]]
    assert sorted(round(h.bounds[0]) for h in halves) == [-180, 145]
    assert sorted(round(h.bounds[2]) for h in halves) == [-146, 180]
    assert shape(record.geometry).covers(Point(179.9, 65)) and shape(record.geometry).covers(Point(-179.9, 65))


def test_ordinary_swath_keeps_an_ordinary_bbox():
    record = parse_umm_item(_modis_item(5))  # 139.8°E to 164.5°E, south of the equator
    west, south, east, north = record.bbox
    assert (west, south, east) == (139.821789, -15.443131, 164.534397)
    assert north == pytest.approx(5.585501, abs=0.05)
    assert record.geometry["type"] == "Polygon"


def test_south_pole_polygon():
    # counter-clockwise seen from space: westward round the south pole, interior on the left
    record = parse_umm_item(_item_with(_polygon((0, -70), (-90, -70), (180, -70), (90, -70))))
    assert record.bbox[0] == -180 and record.bbox[2] == 180 and record.bbox[1] == -90
    assert record.bbox[3] == pytest.approx(-70, abs=1e-6)  # edges bow towards the pole, not away
    assert shape(record.geometry).covers(Point(45, -89.5))
    _assert_geojson_plane(record.geometry)


def test_rectangle_across_the_antimeridian():
    rect = {"WestBoundingCoordinate": 170, "SouthBoundingCoordinate": -10, "EastBoundingCoordinate": -170, "NorthBoundingCoordinate": 5}
    record = parse_umm_item(_item_with({"BoundingRectangles": [rect]}))
    assert record.bbox == (170.0, -10.0, -170.0, 5.0)
    assert record.geometry["type"] == "MultiPolygon" and len(record.geometry["coordinates"]) == 2
    assert not shape(record.geometry).covers(Point(0, 0))


def test_two_rectangles_either_side_of_the_antimeridian_leave_out_their_gap():
    # GRACE: 0.5..180 and -180..-0.5; the 1° gap at 0° is the one left out of the bbox
    body = json.loads((FIXTURES / "cmr" / "earthaccess__TELLUS_GRAC_L3_JPL_RL06_LND_v04__granules.umm_json__body_3items.json").read_text())
    record = parse_umm_item(body["items"][0])
    assert record.bbox == (0.5, -89.5, -0.5, 89.5)
    assert not shape(record.geometry).covers(Point(0, 0))


def test_global_rectangle_stays_global():
    body = json.loads((FIXTURES / "cmr" / "earthaccess__GPM_3IMERGHH_G1618495041-GES_DISC__granules.umm_json.json").read_text())
    record = parse_umm_item(body["items"][0])
    assert record.bbox == (-180.0, -90.0, 180.0, 90.0)
    assert shape(record.geometry).equals(shapely.box(-180, -90, 180, 90))


def test_collection_extent_widens_across_the_antimeridian():
    collection = {"extent": {"spatial": {"bbox": [[150, 0, 170, 10]]}, "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}}}
    item = {"bbox": [175, -5, -175, 5], "properties": {"datetime": "2020-06-01T00:00:00Z"}}
    widened = covering_extent(collection, [item])
    assert widened["spatial"]["bbox"][0] == [150, -5, -175, 10]  # not [-175, -5, 170, 10]
    assert covering_extent({"extent": widened}, [item]) is None


def test_item_uses_the_cmr_footprint(tmp_path, datasets):
    """The STAC item's bbox and geometry are the record's footprint, not a box around it."""
    from cog_assets.formats.cog import write_cog
    from cog_assets.formats.readers import Raster
    from cog_assets.stac.items import build_item
    from affine import Affine

    item = _modis_item(1)
    item["umm"]["RelatedUrls"] = [{"Type": "GET DATA", "URL": "https://data.example/MOD02QKM.A1.hdf"}]
    item["umm"]["TemporalExtent"] = {"RangeDateTime": {"BeginningDateTime": "2020-01-01T00:00:00Z", "EndingDateTime": "2020-01-01T00:05:00Z"}}
    record = parse_umm_item(item)
    data = np.ones((4, 8), np.float32)
    cog = tmp_path / "c.tif"
    write_cog(Raster(data, Affine(1, 0, 145, 0, -1, 77), -9999.0, None, data > 0), cog)
    from cog_assets.formats.cog import read_info

    stac_item = build_item(datasets["omdoao3e"], record, read_info(cog), cog.as_uri(), "https://cmr.example")
    assert stac_item.bbox == list(record.bbox) and stac_item.bbox[0] > stac_item.bbox[2]
    assert stac_item.geometry["type"] == "MultiPolygon"
    assert stac_item.datetime == datetime(2020, 1, 1, tzinfo=timezone.utc)
