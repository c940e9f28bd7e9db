"""AOI files: what is accepted, and the message each kind of bad file gets."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import shape

from cog_assets.analysis.aoi import AoiError, aoi_id, parse_aoi

SQUARE = [[[10, 10], [12, 10], [12, 12], [10, 12], [10, 10]]]


def feature(geometry: dict, **extra) -> bytes:
    return json.dumps({"type": "Feature", "properties": {}, "geometry": geometry, **extra}).encode()


def test_feature_collection_of_one_feature_and_bare_geometry_are_the_same_area():
    polygon = {"type": "Polygon", "coordinates": SQUARE}
    one = parse_aoi("a.geojson", feature(polygon))
    collection = parse_aoi(
        "a.geojson", json.dumps({"type": "FeatureCollection", "features": [json.loads(feature(polygon))]}).encode()
    )
    bare = parse_aoi("a.geojson", json.dumps(polygon, indent=2).encode())
    assert one == collection == bare
    assert one.id == "a" and one.bounds == (10, 10, 12, 12)


@pytest.mark.parametrize(
    "ring",
    [
        [[170, -20], [-170, -20], [-170, -10], [170, -10], [170, -20]],  # edges jump across ±180
        [[170, -20], [190, -20], [190, -10], [170, -10], [170, -20]],  # longitudes past 180
    ],
)
def test_antimeridian_areas_are_cut_into_two_polygons(ring):
    aoi = parse_aoi("pacific.geojson", feature({"type": "Polygon", "coordinates": [ring]}))
    area = shape(aoi.geometry)
    assert aoi.geometry["type"] == "MultiPolygon"
    assert sorted(p.bounds for p in area.geoms) == [(-180, -20, -170, -10), (170, -20, 180, -10)]
    assert area.area == pytest.approx(200)


BAD = {
    "syntax.geojson": (b'{"type": "Feature",', "not valid JSON"),
    "point.geojson": (feature({"type": "Point", "coordinates": [1, 2]}), "is a Point; an AOI must be a Polygon"),
    "bowtie.geojson": (
        feature({"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}),
        "invalid ring: Self-intersection",
    ),
    "open.geojson": (feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}), "is not closed"),
    "metres.geojson": (
        feature({"type": "Polygon", "coordinates": [[[5e5, 4e6], [6e5, 4e6], [6e5, 5e6], [5e5, 4e6]]]}),
        "looks projected",
    ),
    "mercator.geojson": (
        feature(
            {"type": "Polygon", "coordinates": SQUARE},
            crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        ),
        "field 'crs' names 'urn:ogc:def:crs:EPSG::3857'",
    ),
    "two.geojson": (
        json.dumps({"type": "FeatureCollection", "features": [json.loads(feature({"type": "Polygon", "coordinates": SQUARE}))] * 2}).encode(),
        "holds 2 features",
    ),
    "nogeom.geojson": (json.dumps({"type": "Feature", "properties": {}, "geometry": None}).encode(), "'geometry' is empty"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_are_refused_naming_the_file_and_the_problem(name):
    data, expected = BAD[name]
    with pytest.raises(AoiError) as error:
        parse_aoi(name, data)
    assert str(error.value).startswith(f"{name}: ")
    assert expected in str(error.value)


@pytest.mark.parametrize("name", ["has space.geojson", "a,b.geojson", ".hidden.geojson", "x.json"])
def test_file_names_unusable_as_partition_keys_are_refused(name):
    with pytest.raises(AoiError, match="rename the file"):
        aoi_id(name)


def test_fingerprint_follows_the_geometry_not_the_formatting():
    polygon = {"type": "Polygon", "coordinates": SQUARE}
    compact = parse_aoi("a.geojson", json.dumps(polygon).encode())
    assert parse_aoi("a.geojson", json.dumps(polygon, indent=4).encode()).sha256 == compact.sha256
    moved = {"type": "Polygon", "coordinates": [[[x + 1, y] for x, y in SQUARE[0]]]}
    assert parse_aoi("a.geojson", json.dumps(moved).encode()).sha256 != compact.sha256
