"""Areas of interest (AOIs): one GeoJSON file each, validated before anything is computed.

An AOI file holds one area: a Polygon or MultiPolygon Feature, a FeatureCollection of one such
Feature, or the bare geometry, in WGS 84 longitude/latitude (RFC 7946). Everything that can be
wrong with a file is found here, so a bad file gets a status that names the file, what is wrong
and how to fix it, instead of failing a run later. An area crossing the antimeridian, written
either with longitudes past 180 or with edges jumping from +179 to -179, is cut at ±180 into a
MultiPolygon, the form every raster library understands.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape

AOI_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
AOI_SUFFIX = ".geojson"
WGS84_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
    "OGC:CRS84",
    "CRS84",
}
_FIX_GEOMETRY = "repair it (shapely.make_valid, or 'Fix geometries' in QGIS) and save the file again"


class AoiError(ValueError):
    """An AOI file that cannot be used; the message names the file and says how to fix it."""


@dataclass(frozen=True)
class Aoi:
    """A validated area: its id (the file stem), its geometry cut at ±180, and a fingerprint."""

    id: str
    geometry: dict[str, Any]
    sha256: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return shape(self.geometry).bounds

    def feature(self) -> dict[str, Any]:
        """A GeoJSON Feature as exactextract reads it, carrying the AOI id."""
        return {"type": "Feature", "properties": {"aoi_id": self.id}, "geometry": self.geometry}


def aoi_id(file_name: str) -> str:
    """The AOI id (partition key) a file name gives; refuses names unusable as keys."""
    if not file_name.endswith(AOI_SUFFIX):
        raise AoiError(f"{file_name}: AOI files must end in {AOI_SUFFIX}; rename the file")
    stem = file_name[: -len(AOI_SUFFIX)]
    if not AOI_ID.match(stem) or ".." in stem:
        raise AoiError(
            f"{file_name}: the file name is the AOI id and may hold only letters, digits, '.', "
            "'_', '-', '+' (no spaces or commas, at most 100 characters, starting with a letter "
            "or digit); rename the file"
        )
    return stem


def _geometry_of(name: str, document: Any) -> dict[str, Any]:
    """The one geometry an AOI document holds (Feature, FeatureCollection of one, geometry)."""
    if not isinstance(document, dict) or "type" not in document:
        raise AoiError(f"{name}: not a GeoJSON object (expected a Feature with a Polygon or MultiPolygon)")
    kind = document["type"]
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list) or len(features) != 1:
            count = len(features) if isinstance(features, list) else "no"
            raise AoiError(
                f"{name}: field 'features' holds {count} features; an AOI file holds one area: "
                "merge them into one MultiPolygon feature, or put each area in its own file"
            )
        return _geometry_of(name, features[0])
    if kind == "Feature":
        geometry = document.get("geometry")
        if not isinstance(geometry, dict):
            raise AoiError(f"{name}: field 'geometry' is empty; give the Feature a Polygon or MultiPolygon")
        return geometry
    return document


def _check_crs(name: str, document: dict[str, Any]) -> None:
    crs = document.get("crs")
    if crs is None:
        return
    crs_name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
    if crs_name not in WGS84_NAMES:
        raise AoiError(
            f"{name}: field 'crs' names {crs_name or crs!r}; AOIs must be WGS 84 longitude/latitude "
            "(RFC 7946): reproject the file to EPSG:4326 and remove the 'crs' member"
        )


def _check_rings(name: str, geometry: dict[str, Any]) -> None:
    """Closed rings of four or more positions inside the lon/lat range (shapely would close
    an open ring silently, and projected metres would pass as coordinates)."""
    kind = geometry.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise AoiError(f"{name}: the geometry is a {kind}; an AOI must be a Polygon or MultiPolygon")
    coordinates = geometry.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise AoiError(f"{name}: field 'coordinates' is empty or not a list of rings")
    for p, rings in enumerate(polygons, 1):
        if not isinstance(rings, list) or not rings:
            raise AoiError(f"{name}: polygon {p} has no rings")
        for r, ring in enumerate(rings, 1):
            where = f"{name}: ring {r} of polygon {p}"
            try:
                points = [(float(x), float(y)) for x, y, *_ in ring]
            except (TypeError, ValueError):
                raise AoiError(f"{where} is not a list of [longitude, latitude] positions") from None
            if len(points) < 4 or points[0] != points[-1]:
                raise AoiError(
                    f"{where} is not closed (needs at least 4 positions, the last equal to the "
                    "first); close the ring"
                )
            for x, y in points:
                if not (-360 <= x <= 360 and -90 <= y <= 90):
                    raise AoiError(
                        f"{where} has position ({x:g}, {y:g}) outside longitude/latitude range; "
                        "the file looks projected: reproject it to EPSG:4326 (RFC 7946)"
                    )


def _unwrapped(geometry: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """An area drawn with an edge jumping across ±180 (179 → -179), in continuous longitudes."""

    def shift(polygon: Polygon) -> Polygon:
        xs = [x for x, _ in polygon.exterior.coords]
        if not any(abs(a - b) > 180 for a, b in zip(xs, xs[1:])):
            return polygon
        return shapely.transform(polygon, lambda xy: xy + [[360.0, 0.0]] * (xy[:, :1] < 0))

    if isinstance(geometry, Polygon):
        return shift(geometry)
    return MultiPolygon([shift(p) for p in geometry.geoms])


def _cut_at_antimeridian(geometry: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """Pieces beyond ±180 moved back into [-180, 180]."""
    pieces = []
    for offset in (-360.0, 0.0, 360.0):
        window = box(-180 + offset, -90, 180 + offset, 90)
        part = geometry.intersection(window)
        if not part.is_empty:
            pieces.append(affinity.translate(part, xoff=-offset))
    polygons = [p for piece in pieces for p in getattr(piece, "geoms", [piece]) if isinstance(p, Polygon)]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def parse_aoi(file_name: str, data: bytes) -> Aoi:
    """Validate an AOI file's bytes; raises AoiError naming the file, the problem and the fix."""
    identifier = aoi_id(file_name)
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AoiError(f"{file_name}: not valid JSON ({exc}); fix the file's syntax") from None
    if isinstance(document, dict):
        _check_crs(file_name, document)
    geometry = _geometry_of(file_name, document)
    _check_rings(file_name, geometry)
    area = _unwrapped(shape(geometry))
    if not area.is_valid:
        raise AoiError(f"{file_name}: invalid ring: {shapely.is_valid_reason(area)}; {_FIX_GEOMETRY}")
    if area.area == 0:
        raise AoiError(f"{file_name}: the area is empty (zero area); draw a polygon with an inside")
    cut = _cut_at_antimeridian(area)
    if cut.is_empty or not cut.is_valid:
        raise AoiError(f"{file_name}: the area does not lie within longitude -180..180 after cutting at ±180")
    canonical = json.dumps(mapping(cut), sort_keys=True).encode()
    return Aoi(id=identifier, geometry=json.loads(canonical), sha256=hashlib.sha256(canonical).hexdigest())
