"""Synthetic but faithful granule files for both datasets.

OMI (HDF-EOS5): the group/attribute layout is replayed from the real structure dump in
``fixtures/omi`` (group names with spaces, ScaleFactor/Offset/MissingValue, GridSpan/
GridSpacing strings), with the grid renamed ColumnAmountO3 as in OMDOAO3e, a StructMetadata.0
whose corners put row 0 at the south edge, and fill values where the real product has them
(polar night, data gaps).

GPM IMERG V07 (HDF5): ``/Grid/precipitation`` (time=1, lon, lat) with ``/Grid/lat`` ascending
from the south, ``/Grid/lon`` and ``/Grid/time`` attached as dimension scales, _FillValue
-9999.9, units mm/hr.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OMI_DMR = FIXTURES / "omi" / "OMI-Aura_L3-OMSO2e_2012m0101_v003-2012m0103t014459.he5.dmr.xml"
OMI_FILL = np.float32(-1.2676506e30)
IMERG_FILL = np.float32(-9999.9)
_NS = {"d": "http://xml.opendap.org/ns/DAP/4.0#"}
_DTYPES = {"Float32": np.float32, "Float64": np.float64, "Int32": np.int32, "Int16": np.int16}


@dataclass
class SyntheticGranule:
    content: bytes
    values: np.ndarray  # the stored variable, in the file's own orientation, before scaling
    fill: float


def _attrs_of(element: ET.Element) -> dict[str, object]:
    out: dict[str, object] = {}
    for attr in element.findall("d:Attribute", _NS):
        values = [v.text or "" for v in attr.findall("d:Value", _NS)]
        kind = attr.get("type")
        if kind == "String":
            out[attr.get("name")] = values[0] if len(values) == 1 else values
        else:
            array = np.array([float(v) for v in values], dtype=_DTYPES.get(kind, np.float64))
            out[attr.get("name")] = array if array.size > 1 else array[0]
    return out


def _struct_metadata(grid_name: str, rows: int, cols: int) -> str:
    return (
        "GROUP=SwathStructure\nEND_GROUP=SwathStructure\nGROUP=GridStructure\n"
        "\tGROUP=GRID_1\n"
        f'\t\tGridName="{grid_name}"\n'
        f"\t\tXDim={cols}\n\t\tYDim={rows}\n"
        "\t\tUpperLeftPointMtrs=(-180000000.000000,-90000000.000000)\n"
        "\t\tLowerRightMtrs=(180000000.000000,90000000.000000)\n"
        "\t\tProjection=HE5_GCTP_GEO\n\t\tGridOrigin=HE5_HDFE_GD_UL\n"
        "\t\tGROUP=Dimension\n\t\tEND_GROUP=Dimension\n"
        "\t\tGROUP=DataField\n"
        "\t\t\tOBJECT=DataField_1\n\t\t\t\tDataFieldName=\"ColumnAmountO3\"\n"
        "\t\t\t\tDataType=H5T_NATIVE_FLOAT\n\t\t\t\tDimList=(\"YDim\",\"XDim\")\n"
        "\t\t\tEND_OBJECT=DataField_1\n\t\tEND_GROUP=DataField\n"
        "\tEND_GROUP=GRID_1\nEND_GROUP=GridStructure\nGROUP=PointStructure\n"
        "END_GROUP=PointStructure\nEND\n"
    )


def omi_values(rows: int = 720, cols: int = 1440, seed: int = 1) -> np.ndarray:
    """South-up ozone in DU with fill over the southern polar night and scattered gaps."""
    rng = np.random.default_rng(seed)
    lat = -89.875 + 0.25 * np.arange(rows)[:, None] * (720 / rows)
    lon = -179.875 + 0.25 * np.arange(cols)[None, :] * (1440 / cols)
    ozone = 300 + 40 * np.sin(np.radians(lat) * 3) + 15 * np.cos(np.radians(lon) * 2)
    ozone = (ozone + rng.normal(0, 5, (rows, cols))).astype(np.float32)
    ozone[lat[:, 0] < -75, :] = OMI_FILL
    gaps = rng.random((rows, cols)) < 0.02
    ozone[gaps] = OMI_FILL
    return ozone


# where omi_coordinate_values puts fill: (west, south, east, north)
OMI_NODATA_BOX = (20.0, 0.0, 40.0, 10.0)


def omi_coordinate_value(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Ozone that encodes position: rises with latitude and longitude, with a longitude wave."""
    return (300 + lat + 0.5 * lon + 20 * np.cos(np.radians(lon) * 2)).astype(np.float32)


def omi_coordinate_values(rows: int = 720, cols: int = 1440, offset: float = 0.0) -> np.ndarray:
    """South-up values from ``omi_coordinate_value`` at cell centres (+ ``offset`` DU), with
    fill in ``OMI_NODATA_BOX`` and south of 75°S: grids whose statistics a test can derive."""
    step = 180.0 / rows
    lat = (-90 + step / 2 + step * np.arange(rows))[:, None]
    lon = (-180 + step / 2 + step * np.arange(cols))[None, :]
    values = omi_coordinate_value(lat, lon) + np.float32(offset)
    west, south, east, north = OMI_NODATA_BOX
    values[((lat > south) & (lat < north)) & ((lon > west) & (lon < east))] = OMI_FILL
    values[np.broadcast_to(lat < -75, values.shape)] = OMI_FILL
    return values


def make_omi_granule(
    values: np.ndarray | None = None,
    variable_name: str = "ColumnAmountO3",
    struct_metadata: bool = True,
    grid_span: str = "(-180,180,-90,90)",
    grid_spacing: str | None = None,
) -> SyntheticGranule:
    """An OMDOAO3e-like HDF-EOS5 file, laid out like the OMI structure dump."""
    values = omi_values() if values is None else values
    root = ET.parse(OMI_DMR).getroot()
    hdfeos = root.find("d:Group[@name='HDFEOS']", _NS)
    file_attrs = hdfeos.find("d:Group[@name='ADDITIONAL']/d:Group[@name='FILE_ATTRIBUTES']", _NS)
    grid = hdfeos.find("d:Group[@name='GRIDS']/d:Group", _NS)
    fields = grid.find("d:Group[@name='Data Fields']", _NS)
    template = fields.find("d:Float32[@name='ColumnAmountO3']", _NS)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        additional = f.create_group("HDFEOS/ADDITIONAL/FILE_ATTRIBUTES")
        for name, value in _attrs_of(file_attrs).items():
            additional.attrs[name] = value
        grid_group = f.create_group("HDFEOS/GRIDS/ColumnAmountO3")
        for name, value in _attrs_of(grid).items():
            grid_group.attrs[name] = value
        grid_group.attrs["GridSpan"] = grid_span
        if grid_spacing is not None:  # the real product is 0.25°; coarser grids make fast soak tests
            grid_group.attrs["GridSpacing"] = grid_spacing
        grid_group.attrs["NumberOfLatitudesInGrid"] = np.int32(values.shape[0])
        grid_group.attrs["NumberOfLongitudesInGrid"] = np.int32(values.shape[1])
        data_fields = grid_group.create_group("Data Fields")
        dataset = data_fields.create_dataset(
            variable_name, data=values, chunks=True, compression="gzip", compression_opts=1
        )
        for name, value in _attrs_of(template).items():
            dataset.attrs[name] = value
        info = f.create_group("HDFEOS INFORMATION")
        info.attrs["HDFEOSVersion"] = "HDFEOS_5.1.11"
        if struct_metadata:
            info.create_dataset(
                "StructMetadata.0", data=_struct_metadata("ColumnAmountO3", *values.shape)
            )
    return SyntheticGranule(buffer.getvalue(), values, float(OMI_FILL))


def imerg_values(n_lon: int = 3600, n_lat: int = 1800, seed: int = 2) -> np.ndarray:
    """(time=1, lon, lat) precipitation in mm/hr, mostly zero, with fill outside ±60° at times."""
    rng = np.random.default_rng(seed)
    step = 360.0 / n_lon
    lat = -90 + step / 2 + step * np.arange(n_lat)
    rain = np.clip(rng.gamma(0.3, 2.0, (n_lon, n_lat)) - 0.5, 0, None).astype(np.float32)
    rain[:, np.abs(lat) > 85] = IMERG_FILL
    rain[rng.random((n_lon, n_lat)) < 0.01] = IMERG_FILL
    return rain[None, :, :]


def make_imerg_granule(values: np.ndarray | None = None, variable: str = "precipitation") -> SyntheticGranule:
    """A GPM IMERG V07 half-hourly-like HDF5 file (netCDF-4 style dimension scales)."""
    values = imerg_values() if values is None else values
    _, n_lon, n_lat = values.shape
    step = 360.0 / n_lon
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        grid = f.create_group("Grid")
        grid.attrs["GridHeader"] = (
            f"BinMethod=ARITHMETIC_MEAN;\nRegistration=CENTER;\nLatitudeResolution={step};\n"
            f"LongitudeResolution={step};\nNorthBoundingCoordinate=90;\n"
            "SouthBoundingCoordinate=-90;\nEastBoundingCoordinate=180;\n"
            "WestBoundingCoordinate=-180;\nOrigin=SOUTHWEST;\n"
        )
        time = grid.create_dataset("time", data=np.array([1_700_000_000], dtype=np.int32))
        time.attrs["units"] = "seconds since 1970-01-01 00:00:00 UTC"
        lon = grid.create_dataset("lon", data=(-180 + step / 2 + step * np.arange(n_lon)).astype(np.float32))
        lon.attrs["units"] = "degrees_east"
        lat = grid.create_dataset("lat", data=(-90 + step / 2 + step * np.arange(n_lat)).astype(np.float32))
        lat.attrs["units"] = "degrees_north"
        for scale in (time, lon, lat):
            scale.make_scale(scale.name.rsplit("/", 1)[-1])
        precip = grid.create_dataset(
            variable, data=values, chunks=(1, min(n_lon, 145), min(n_lat, 1800)),
            compression="gzip", compression_opts=1,
        )
        precip.attrs["_FillValue"] = IMERG_FILL
        precip.attrs["units"] = "mm/hr"
        precip.attrs["DimensionNames"] = "time,lon,lat"
        precip.attrs["Units"] = "mm/hr"
        for axis, scale in enumerate((time, lon, lat)):
            precip.dims[axis].attach_scale(scale)
    return SyntheticGranule(buffer.getvalue(), values, float(IMERG_FILL))
