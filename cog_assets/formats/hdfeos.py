"""The HDF-EOS5 grid description (``StructMetadata.0``) and what the reader can place.

The reader maps array index (row, column) to longitude/latitude from the grid's corners.
That is only right for a geographic grid (``HE5_GCTP_GEO``) whose first element is at the
upper-left corner point (``HE5_HDFE_GD_UL``) and whose variable is laid out (YDim, XDim) with
the declared sizes. Anything else is refused, naming the file and the field, rather than
written to the wrong place on Earth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from cog_assets.formats.errors import GranuleReadError

SUPPORTED = {"Projection": "HE5_GCTP_GEO", "GridOrigin": "HE5_HDFE_GD_UL"}
SUPPORTED_DIMS = ("YDim", "XDim")
_BLOCK = re.compile(r"GROUP=GRID_\d+(.*?)END_GROUP=GRID_\d+", re.S)
_FIELD = re.compile(r"OBJECT=DataField_\d+(.*?)END_OBJECT=DataField_\d+", re.S)
_VALUE = re.compile(r"^\s*(\w+)=(.*?)\s*$", re.M)


@dataclass(frozen=True)
class GridMetadata:
    """The grid-level keys of one GRID block and each data field's DimList."""

    name: str
    keys: dict[str, str]
    dim_lists: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def pair(self, key: str) -> tuple[float, float] | None:
        match = re.fullmatch(r"\(\s*([^,]+),\s*([^)]+)\)", self.keys.get(key, ""))
        return (float(match.group(1)), float(match.group(2))) if match else None


def dms_to_degrees(packed: float) -> float:
    """HDF-EOS packs angles as DDDMMMSSS.SS."""
    sign = -1.0 if packed < 0 else 1.0
    value = abs(packed)
    degrees = int(value // 1_000_000)
    minutes = int((value - degrees * 1_000_000) // 1000)
    seconds = value - degrees * 1_000_000 - minutes * 1000
    return sign * (degrees + minutes / 60 + seconds / 3600)


def read_grid(handle: h5py.File, grid_name: str) -> GridMetadata | None:
    """The GRID block named ``grid_name`` from StructMetadata.0 (None without StructMetadata)."""
    node = handle.get("HDFEOS INFORMATION/StructMetadata.0")
    if node is None:
        return None
    text = node[()]
    text = text.decode() if isinstance(text, bytes) else str(text)
    for block in _BLOCK.findall(text):
        if f'GridName="{grid_name}"' not in block:
            continue
        fields = _FIELD.findall(block)
        outer = _FIELD.sub("", re.sub(r"(?<!END_)GROUP=(\w+).*?END_GROUP=\1", "", block, flags=re.S))
        keys = {k: v.strip().strip('"') for k, v in _VALUE.findall(outer)}
        dim_lists = {}
        for body in fields:
            values = dict(_VALUE.findall(body))
            name = values.get("DataFieldName", "").strip('"')
            dim_lists[name] = tuple(re.findall(r'"([^"]*)"', values.get("DimList", "")))
        return GridMetadata(grid_name, keys, dim_lists)
    return None


def grid_corners(
    grid: GridMetadata, variable: str, shape: tuple[int, ...], path: Path
) -> tuple[float, float, float, float]:
    """(x, y) of the upper-left and lower-right corner points in degrees, once the grid is
    known to be one the reader places correctly; raises GranuleReadError otherwise."""
    where = f"{path.name}: StructMetadata.0 grid {grid.name!r}"
    for key, expected in SUPPORTED.items():
        if grid.keys.get(key) != expected:
            raise GranuleReadError(
                f"{where} has {key}={grid.keys.get(key, '(missing)')}; the hdfeos5_grid reader "
                f"only places {key}={expected} grids correctly, so {variable!r} was not read. "
                "Such a file needs a reader for its grid"
            )
    if variable not in grid.dim_lists:
        raise GranuleReadError(
            f"{where} lists no DataField named {variable!r} (it lists {sorted(grid.dim_lists)}), "
            "so its dimensions are unknown; check reader.variable in the dataset file"
        )
    if grid.dim_lists[variable] != SUPPORTED_DIMS:
        raise GranuleReadError(
            f"{where}: DataField {variable!r} has DimList={grid.dim_lists[variable]}; the "
            f"hdfeos5_grid reader only reads {SUPPORTED_DIMS} (rows are latitudes)"
        )
    for key, size in (("YDim", shape[0]), ("XDim", shape[1])):
        if grid.keys.get(key) is not None and grid.keys[key] != str(size):
            raise GranuleReadError(
                f"{where} declares {key}={grid.keys[key]} but {variable!r} has shape {shape}; "
                "the file is inconsistent"
            )
    upper, lower = grid.pair("UpperLeftPointMtrs"), grid.pair("LowerRightMtrs")
    if upper is None or lower is None:
        raise GranuleReadError(
            f"{where} has no UpperLeftPointMtrs/LowerRightMtrs corners for {variable!r}; set "
            "reader.grid and reader.orientation in the dataset file"
        )
    (ux, uy), (lx, ly) = upper, lower
    return dms_to_degrees(ux), dms_to_degrees(uy), dms_to_degrees(lx), dms_to_degrees(ly)
