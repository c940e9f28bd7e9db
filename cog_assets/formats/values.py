"""From stored numbers to physical values: fill, valid range, scale and offset.

Two conventions give the same attribute pair opposite meanings, so each is explicit:

* ``cf`` (CF / netCDF, ``scale_factor`` / ``add_offset``): value = raw × scale + offset.
* ``hdfeos`` (HDF-EOS5 from Aura, ``ScaleFactor`` / ``Offset``): value = scale × (raw − offset).

``reader.scale_convention: auto`` picks the convention from the attribute names; a dataset
whose files use one name with the other formula (MODIS writes ``scale_factor`` / ``add_offset``
but means ``hdfeos``) says so in its YAML. Fill values and valid ranges apply to the stored
numbers, before scaling, as both conventions define them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from cog_assets.formats.config import ReaderConfig
from cog_assets.formats.errors import GranuleReadError

Convention = Literal["cf", "hdfeos"]
_NAMES: dict[Convention, tuple[str, str]] = {
    "cf": ("scale_factor", "add_offset"),
    "hdfeos": ("ScaleFactor", "Offset"),
}


def attr(obj: h5py.HLObject, *names: str) -> Any:
    """The first attribute present among ``names``, as a Python scalar/str or an array."""
    for name in names:
        if name in obj.attrs:
            value = obj.attrs[name]
            if isinstance(value, bytes):
                return value.decode()
            if isinstance(value, np.ndarray) and value.size == 1:
                return value.reshape(-1)[0].item()
            if isinstance(value, np.generic):
                return value.item()
            return value
    return None


def convention(ds: h5py.Dataset, config: ReaderConfig, path: Path) -> Convention:
    """The formula the file means, from reader.scale_convention or the attribute names."""
    if config.scale_convention != "auto":
        return config.scale_convention
    found = {name: tuple(attr(ds, n) for n in names) for name, names in _NAMES.items()}
    present = [name for name, values in found.items() if any(v is not None for v in values)]
    if len(present) == 2 and _pair(found["cf"]) != _pair(found["hdfeos"]):
        raise GranuleReadError(
            f"{path.name}: {ds.name!r} has both HDF-EOS ScaleFactor/Offset {found['hdfeos']} "
            f"and CF scale_factor/add_offset {found['cf']}, which disagree; set "
            "reader.scale_convention (cf: raw × scale + offset, hdfeos: scale × (raw − offset)) "
            "in the dataset file"
        )
    return "hdfeos" if present == ["hdfeos"] else "cf"


def _pair(values: tuple[Any, Any]) -> tuple[float, float]:
    scale, offset = values
    return (1.0 if scale is None else float(scale), 0.0 if offset is None else float(offset))


def scale_and_offset(ds: h5py.Dataset, config: ReaderConfig, chosen: Convention) -> tuple[float, float]:
    """The dataset file's values, else the chosen convention's attributes, else the other's."""
    own, other = _NAMES[chosen], _NAMES["hdfeos" if chosen == "cf" else "cf"]
    scale = config.scale_factor if config.scale_factor is not None else attr(ds, own[0], other[0])
    offset = config.add_offset if config.add_offset is not None else attr(ds, own[1], other[1])
    return _pair((scale, offset))


def valid_range(ds: h5py.Dataset, config: ReaderConfig, path: Path) -> tuple[float, float] | None:
    """The range of valid stored values (reader.valid_range, or the file's attributes)."""
    if config.valid_range == "ignore":
        return None
    if isinstance(config.valid_range, tuple):
        return config.valid_range
    pair = attr(ds, "valid_range", "ValidRange")
    if pair is not None:
        values = np.asarray(pair, dtype=np.float64).reshape(-1)
        if values.size != 2 or not values[0] <= values[1]:
            raise GranuleReadError(
                f"{path.name}: {ds.name!r} has a valid range {pair!r} that is not [min, max]; set "
                "reader.valid_range to [min, max] or ignore in the dataset file"
            )
        return float(values[0]), float(values[1])
    low, high = attr(ds, "valid_min"), attr(ds, "valid_max")
    if low is None and high is None:
        return None
    return (-np.inf if low is None else float(low), np.inf if high is None else float(high))


def unpack(
    raw: np.ndarray, ds: h5py.Dataset, config: ReaderConfig, path: Path
) -> tuple[np.ndarray, np.ndarray, float]:
    """(physical float32 values with nodata where invalid, valid mask, nodata value)."""
    fill = config.fill_value if config.fill_value is not None else attr(ds, "_FillValue", "missing_value")
    missing = attr(ds, "MissingValue", "missing_value")
    valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    for value in (fill, missing):
        if value is not None:
            valid &= raw != np.asarray(value, dtype=raw.dtype)
    bounds = valid_range(ds, config, path)
    if bounds is not None:
        valid &= (raw >= bounds[0]) & (raw <= bounds[1])
    chosen = convention(ds, config, path)
    scale, offset = scale_and_offset(ds, config, chosen)
    data = raw.astype(np.float32, copy=False)
    if (scale, offset) != (1.0, 0.0):  # in float64: large offsets on packed integers stay exact
        wide = raw.astype(np.float64)
        data = (wide * scale + offset if chosen == "cf" else scale * (wide - offset)).astype(np.float32)
    nodata = float(np.float32(fill)) if fill is not None else float(np.finfo(np.float32).min)
    if np.any(data[valid] == np.float32(nodata)):
        raise GranuleReadError(
            f"{path.name}: variable {ds.name!r}: a valid value equals the nodata value {nodata} "
            "after scaling; set reader.fill_value in the dataset file to a value outside the data range"
        )
    data = np.where(valid, data, np.float32(nodata)).astype(np.float32, copy=False)
    return data, valid, nodata
