"""Granule footprints as STAC/GeoJSON wants them: bbox and geometry on the -180..180 plane.

CMR describes a granule's extent on the sphere: rectangles whose west may exceed their east
(they cross the antimeridian) and polygons with great-circle edges, listed counter-clockwise,
that may wind around a pole. GeoJSON (RFC 7946, which STAC follows) draws straight lines in
longitude/latitude, wants a geometry that crosses the antimeridian cut into a MultiPolygon,
a bbox whose west is greater than its east when it crosses, and a bbox reaching ±90 when the
shape contains a pole. The cutting and pole closing are done by the ``antimeridian`` package;
this module densifies great-circle edges first and works out the tightest bbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import antimeridian
import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon, box

Bbox = tuple[float, float, float, float]
# great-circle edges are densified to at most this arc (degrees) so straight GeoJSON lines
# follow them closely (a MODIS swath edge bows several degrees poleward of its vertices)
MAX_ARC_DEGREES = 1.0


class FootprintError(ValueError):
    """CMR's spatial extent cannot be turned into a footprint."""


@dataclass(frozen=True)
class Footprint:
    bbox: Bbox
    geometry: dict[str, Any]  # GeoJSON geometry


def _lon_intervals_union(intervals: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """The shortest west→east arc covering every interval (west > east when it crosses ±180)."""
    merged: list[list[float]] = []
    for west, east in sorted(intervals):
        if merged and west <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], east)
        else:
            merged.append([west, east])
    if not merged:
        raise FootprintError("no longitudes to bound")
    # the widest gap between covered arcs (including the one across ±180) is left out
    gaps = [(merged[0][0] + 360.0 - merged[-1][1], 0)]
    gaps += [(merged[i][0] - merged[i - 1][1], i) for i in range(1, len(merged))]
    width, after = max(gaps)
    if width <= 0:
        return -180.0, 180.0
    if after == 0:  # the gap is the one across the antimeridian: an ordinary bbox
        return merged[0][0], merged[-1][1]
    return merged[after][0], merged[after - 1][1]


def _bbox_of(parts: list[Any]) -> Bbox:
    """Tightest STAC bbox of geometries that already lie within -180..180."""
    bounds = [part.bounds for part in parts if not part.is_empty]
    if not bounds:
        raise FootprintError("empty footprint")
    west, east = _lon_intervals_union((b[0], b[2]) for b in bounds)
    south = min(b[1] for b in bounds)
    north = max(b[3] for b in bounds)
    # 1e-9° is well below CMR's precision, and drops the float noise of cutting and closing
    return (round(west, 9), round(south, 9), round(east, 9), round(north, 9))


def _footprint(parts: list[Any]) -> Footprint:
    polygons: list[Polygon] = []
    others: list[Any] = []
    for part in parts:
        target = polygons if isinstance(part, Polygon) else others
        target.extend(getattr(part, "geoms", [part]))
    # an antimeridian cut leaves pieces on both edges: union keeps them apart, merges overlaps
    merged = shapely.unary_union(polygons + others)
    return Footprint(_bbox_of(polygons + others), json.loads(shapely.to_geojson(merged)))


def rectangle(west: float, south: float, east: float, north: float) -> list[Polygon]:
    """A lat/lon rectangle, cut in two when it crosses the antimeridian (west > east)."""
    if not (-90 <= south <= north <= 90) or not (-180 <= west <= 180 and -180 <= east <= 180):
        raise FootprintError(f"rectangle {west, south, east, north} is outside ±180/±90 or south > north")
    if west > east:
        return [box(west, south, 180.0, north), box(-180.0, south, east, north)]
    return [box(west, south, east, north)]


def _densify(points: np.ndarray) -> list[tuple[float, float]]:
    """Insert points along each great-circle edge so no step exceeds MAX_ARC_DEGREES."""
    lon, lat = np.radians(points[:, 0]), np.radians(points[:, 1])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
    out = [points[:1]]
    for i in range(len(xyz) - 1):
        a, b = xyz[i], xyz[i + 1]
        arc = float(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)))
        if arc > np.pi - 1e-9:
            raise FootprintError(f"polygon edge {i + 1} joins two antipodal points: no single great circle")
        steps = max(1, int(np.ceil(np.degrees(arc) / MAX_ARC_DEGREES)))
        if steps > 1:  # spherical linear interpolation between the two vertices
            t = (np.arange(1, steps) / steps)[:, None]
            p = (np.sin((1 - t) * arc) * a + np.sin(t * arc) * b) / np.sin(arc)
            lons = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
            lats = np.degrees(np.arcsin(np.clip(p[:, 2], -1.0, 1.0)))
            out.append(np.round(np.stack([lons, lats], axis=1), 6))
        out.append(points[i + 1 : i + 2])
    return [(float(x), float(y)) for x, y in np.concatenate(out)]


def great_circle_polygon(points: list[tuple[float, float]]) -> list[Polygon]:
    """A CMR GPolygon boundary (counter-clockwise, great-circle edges) as GeoJSON polygons:
    cut at the antimeridian, closed over a pole it winds around."""
    ring = np.asarray(points, dtype=np.float64)
    if ring.ndim != 2 or len(ring) < 4:
        raise FootprintError(f"a polygon needs at least 4 points (closed ring), got {len(ring)}")
    if not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    if np.any(np.abs(ring[:, 0]) > 180) or np.any(np.abs(ring[:, 1]) > 90):
        raise FootprintError("a polygon point is outside ±180/±90")
    fixed = antimeridian.fix_polygon(Polygon(_densify(ring)), fix_winding=True, great_circle=True)
    return list(getattr(fixed, "geoms", [fixed]))


def from_umm_spatial(spatial: dict[str, Any]) -> Footprint | None:
    """The footprint of UMM-G ``SpatialExtent``: rectangles, polygons and points (None if none)."""
    geometry = (spatial or {}).get("HorizontalSpatialDomain", {}).get("Geometry", {}) or {}
    parts: list[Any] = []
    for rect in geometry.get("BoundingRectangles") or []:
        parts += rectangle(
            float(rect["WestBoundingCoordinate"]), float(rect["SouthBoundingCoordinate"]),
            float(rect["EastBoundingCoordinate"]), float(rect["NorthBoundingCoordinate"]),
        )
    for polygon in geometry.get("GPolygons") or []:
        points = polygon.get("Boundary", {}).get("Points", [])
        parts += great_circle_polygon([(float(p["Longitude"]), float(p["Latitude"])) for p in points])
    points = [(float(p["Longitude"]), float(p["Latitude"])) for p in geometry.get("Points") or []]
    if points:
        parts.append(Point(points[0]) if len(points) == 1 else MultiPoint(points))
    return _footprint(parts) if parts else None


def from_bbox(bbox: Bbox) -> Footprint:
    """A footprint for a bare bbox (west > east crosses the antimeridian)."""
    return _footprint(rectangle(*bbox))


def union_bbox(a: Bbox, b: Bbox) -> Bbox:
    """The tightest bbox covering two STAC bboxes, either of which may cross the antimeridian."""
    return _bbox_of([part for bbox in (a, b) for part in rectangle(*bbox)])
