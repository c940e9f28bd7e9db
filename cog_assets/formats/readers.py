"""Read a granule's science variable into one north-up grid with its exact transform.

Three readers, chosen by ``reader.format`` in the dataset file:

* ``hdfeos5_grid`` (OMI L3e): the grid's corners come from the HDF-EOS ``StructMetadata.0``
  (``UpperLeftPointMtrs``/``LowerRightMtrs``), which tells whether row 0 is the south edge;
  a grid it cannot place (projection, origin, dimension order) is refused (``hdfeos``).
* ``hdf5_latlon_grid`` (GPM IMERG): the axes are found through the variable's dimension
  scales (or sibling ``lat``/``lon`` variables); the latitude values give the row order and
  the transform.
* ``geotiff`` (objects that are already GeoTIFFs, ``formats.geotiff``): one band, georeferenced
  by the file itself.

Fill values, valid ranges and the scale/offset convention are applied by ``values.unpack``.
Nothing about a particular product is hard-coded; the YAML can override what a file lacks.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from affine import Affine

from cog_assets.formats import hdfeos
from cog_assets.formats.config import ReaderConfig
from cog_assets.formats.errors import GranuleReadError
from cog_assets.formats.geotiff import read_geotiff
from cog_assets.formats.raster import CRS, Raster
from cog_assets.formats.values import attr as _attr
from cog_assets.formats.values import unpack

__all__ = ["CRS", "GranuleReadError", "Raster", "read_granule"]


def _open_variable(handle: h5py.File, config: ReaderConfig, path: Path) -> h5py.Dataset:
    node = handle.get(config.variable)
    if not isinstance(node, h5py.Dataset):
        parent_path = config.variable.rsplit("/", 1)[0] or "/"
        parent = handle.get(parent_path)
        listing = sorted(parent.keys()) if isinstance(parent, h5py.Group) else []
        raise GranuleReadError(
            f"{path.name}: variable {config.variable!r} not found"
            + (f"; {parent_path!r} holds {listing}" if listing else f"; there is no group {parent_path!r}")
            + ". Fix reader.variable in the dataset file"
        )
    return node


def _hdfeos_extent(
    handle: h5py.File, ds: h5py.Dataset, config: ReaderConfig, path: Path
) -> tuple[float, float, float, float, bool]:
    """(west, south, east, north, south_up) from StructMetadata.0, else from the grid group's
    GridSpan (or reader.grid) with reader.orientation."""
    grid_group = ds.parent.parent
    grid_name = grid_group.name.rsplit("/", 1)[-1]
    grid = hdfeos.read_grid(handle, grid_name)
    if grid is not None:
        west, y0, east, y1 = hdfeos.grid_corners(grid, ds.name.rsplit("/", 1)[-1], ds.shape, path)
        south_up = y0 < y1 if config.orientation == "auto" else config.orientation == "south_up"
        return west, min(y0, y1), east, max(y0, y1), south_up
    projection = _attr(grid_group, "Projection")
    if projection is not None and str(projection).lower() != "geographic":
        raise GranuleReadError(
            f"{path.name}: grid {grid_name!r} has Projection={projection!r}; the hdfeos5_grid "
            "reader only places Geographic grids correctly"
        )
    span = _attr(grid_group, "GridSpan")
    if span is not None:
        west, east, south, north = (float(v) for v in str(span).strip("()").split(","))
    elif config.grid is not None:
        west, east, south, north = config.grid.west, config.grid.east, config.grid.south, config.grid.north
    else:
        raise GranuleReadError(
            f"{path.name}: grid {grid_name!r} has no StructMetadata.0 corners and no "
            "GridSpan; set reader.grid in the dataset file"
        )
    if config.orientation == "auto":
        raise GranuleReadError(
            f"{path.name}: cannot tell the row order of grid {grid_name!r} (no "
            "StructMetadata.0); set reader.orientation to south_up or north_up"
        )
    return west, south, east, north, config.orientation == "south_up"


def read_hdfeos5_grid(path: Path, config: ReaderConfig) -> Raster:
    with _open(path) as handle:
        ds = _open_variable(handle, config, path)
        if ds.ndim != 2:
            raise GranuleReadError(f"{path.name}: {config.variable!r} has {ds.ndim} dimensions, expected 2 (lat, lon)")
        rows, cols = ds.shape
        west, south, east, north, south_up = _hdfeos_extent(handle, ds, config, path)
        spacing = _attr(ds.parent.parent, "GridSpacing")
        if spacing is not None:
            dx, dy = (float(v) for v in str(spacing).strip("()").split(","))
            if round((east - west) / dx) != cols or round((north - south) / dy) != rows:
                raise GranuleReadError(
                    f"{path.name}: {config.variable!r} has shape {ds.shape} but the grid metadata "
                    f"({west},{east},{south},{north} at {dx}x{dy}°) implies "
                    f"({round((north - south) / dy)}, {round((east - west) / dx)}); the file is "
                    "inconsistent or reader.variable names the wrong variable"
                )
        data, valid, nodata = unpack(ds[()], ds, config, path)
        units = config.units or _attr(ds, "Units", "units")
    if south_up:
        data, valid = data[::-1], valid[::-1]
    transform = Affine((east - west) / cols, 0, west, 0, -(north - south) / rows, north)
    return Raster(np.ascontiguousarray(data), transform, nodata, units, np.ascontiguousarray(valid))


def _axis_roles(ds: h5py.Dataset, handle: h5py.File) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(lat axis, lon axis, lat values, lon values) from dimension scales or sibling variables."""
    lat_axis = lon_axis = -1
    lat = lon = None
    for axis in range(ds.ndim):
        scales = list(ds.dims[axis].values()) if len(ds.dims[axis]) else []
        for scale in scales:
            name = scale.name.rsplit("/", 1)[-1].lower()
            units = str(_attr(scale, "units") or "").lower()
            if name.startswith("lat") or units == "degrees_north":
                lat_axis, lat = axis, scale[()]
            elif name.startswith("lon") or units == "degrees_east":
                lon_axis, lon = axis, scale[()]
    if lat is None or lon is None:
        parent = ds.parent
        for key in parent:
            node = parent[key]
            if not isinstance(node, h5py.Dataset) or node.ndim != 1:
                continue
            name = key.lower()
            if lat is None and name.startswith("lat") and node.shape[0] in ds.shape:
                lat_axis, lat = ds.shape.index(node.shape[0]), node[()]
            elif lon is None and name.startswith("lon") and node.shape[0] in ds.shape:
                lon_axis, lon = list(ds.shape).index(node.shape[0]), node[()]
    if lat is None or lon is None or lat_axis == lon_axis:
        raise GranuleReadError(
            f"{ds.name!r}: cannot find its latitude/longitude coordinate variables (dimension "
            "scales or sibling 'lat'/'lon'); use reader.format hdfeos5_grid or fix the variable"
        )
    return lat_axis, lon_axis, np.asarray(lat, np.float64), np.asarray(lon, np.float64)


def _regular_step(values: np.ndarray, name: str, path: Path) -> float:
    """The grid step from the extreme centres (float32 coordinates jitter pairwise)."""
    if values.size < 2:
        raise GranuleReadError(f"{path.name}: {name} has fewer than two coordinates")
    step = (float(values[-1]) - float(values[0])) / (values.size - 1)
    if not np.allclose(np.diff(values), step, rtol=1e-3, atol=0):
        raise GranuleReadError(f"{path.name}: {name} coordinates are not a regular grid")
    return step


def _snap(value: float, step: float) -> float:
    """Undo float32 noise: round to 1e-5° when that moves the value by < 1e-4 of a pixel."""
    rounded = round(value, 5)
    return rounded if abs(rounded - value) < 1e-4 * abs(step) else value


def read_hdf5_latlon_grid(path: Path, config: ReaderConfig) -> Raster:
    with _open(path) as handle:
        ds = _open_variable(handle, config, path)
        lat_axis, lon_axis, lat, lon = _axis_roles(ds, handle)
        if ds.shape[lat_axis] != lat.size or ds.shape[lon_axis] != lon.size:
            raise GranuleReadError(
                f"{path.name}: {config.variable!r} has shape {ds.shape} but its coordinates have "
                f"{lat.size} latitudes and {lon.size} longitudes"
            )
        extra = [a for a in range(ds.ndim) if a not in (lat_axis, lon_axis)]
        if any(ds.shape[a] != 1 for a in extra):
            raise GranuleReadError(
                f"{path.name}: {config.variable!r} has shape {ds.shape}; only length-1 extra "
                "dimensions (such as time) can be dropped"
            )
        data, valid, nodata = unpack(ds[()], ds, config, path)
        units = config.units or _attr(ds, "units", "Units")
    order = [lat_axis, lon_axis]
    data = np.transpose(data, extra + order).reshape(lat.size, lon.size)
    valid = np.transpose(valid, extra + order).reshape(lat.size, lon.size)
    dy = _regular_step(lat, "latitude", path)
    dx = _regular_step(lon, "longitude", path)
    south_up = dy > 0 if config.orientation == "auto" else config.orientation == "south_up"
    if south_up:
        data, valid = data[::-1], valid[::-1]
    if dx < 0:
        data, valid = data[:, ::-1], valid[:, ::-1]
    xres, yres = _snap(abs(dx), dx), _snap(abs(dy), dy)
    west = _snap(float(lon.min()) - xres / 2, dx)
    north = _snap(float(lat.max()) + yres / 2, dy)
    transform = Affine(xres, 0, west, 0, -yres, north)
    return Raster(np.ascontiguousarray(data), transform, nodata, units, np.ascontiguousarray(valid))


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise GranuleReadError(
            f"{path.name} is not a readable HDF5 file ({exc}); it is corrupt or truncated. "
            "Re-materialize its granule asset to download it again"
        ) from None


READERS = {"hdfeos5_grid": read_hdfeos5_grid, "hdf5_latlon_grid": read_hdf5_latlon_grid, "geotiff": read_geotiff}


def read_granule(path: Path, config: ReaderConfig) -> Raster:
    """The configured variable as a north-up grid."""
    try:
        return READERS[config.format](path, config)
    except GranuleReadError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise GranuleReadError(
            f"{path.name}: reading {config.variable or config.title!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
