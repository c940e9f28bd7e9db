"""Science details that must hold for the next dataset too: which scale/offset formula a file
means, valid ranges, and HDF-EOS grid metadata the reader cannot place."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from cog_assets.dataset import DatasetConfigError, ReaderConfig, load_dataset
from cog_assets.formats.readers import GranuleReadError, read_granule

from .granule_files import OMI_FILL, make_imerg_granule, make_omi_granule, omi_values

OMI_VARIABLE = "/HDFEOS/GRIDS/ColumnAmountO3/Data Fields/ColumnAmountO3"
OMI = ReaderConfig(format="hdfeos5_grid", variable=OMI_VARIABLE)
IMERG = ReaderConfig(format="hdf5_latlon_grid", variable="/Grid/precipitation")


def _omi_file(tmp_path: Path, values: np.ndarray | None = None, **attrs) -> Path:
    """A synthetic OMI granule whose variable attributes are replaced by ``attrs``."""
    path = tmp_path / "omi.he5"
    path.write_bytes(make_omi_granule(values).content)
    with h5py.File(path, "r+") as f:
        for name, value in attrs.items():
            if value is None:
                del f[OMI_VARIABLE].attrs[name]
            else:
                f[OMI_VARIABLE].attrs[name] = value
    return path


def _imerg_file(tmp_path: Path, raw: np.ndarray, **attrs) -> Path:
    """A synthetic IMERG granule holding ``raw`` (time, lon, lat) with CF attributes."""
    path = tmp_path / "imerg.HDF5"
    path.write_bytes(make_imerg_granule(raw).content)
    with h5py.File(path, "r+") as f:
        for name, value in attrs.items():
            f["/Grid/precipitation"].attrs[name] = value
    return path


def _north_up(south_up: np.ndarray) -> np.ndarray:
    return south_up[::-1]


# -- scale and offset ------------------------------------------------------------------------

def test_aura_scalefactor_offset_mean_scale_times_raw_minus_offset(tmp_path):
    """HDF-EOS5 (Aura): value = ScaleFactor × (raw − Offset)."""
    ozone = omi_values(seed=3)
    raw = np.where(ozone == OMI_FILL, OMI_FILL, ozone * 4 + 1000).astype(np.float32)
    path = _omi_file(tmp_path, raw, ScaleFactor=np.float64(0.25), Offset=np.float64(1000.0), ValidRange=None)
    raster = read_granule(path, OMI)
    expected = _north_up(np.where(ozone == OMI_FILL, OMI_FILL, 0.25 * (raw.astype(np.float64) - 1000)))
    valid = _north_up(ozone != OMI_FILL)
    assert np.array_equal(raster.valid, valid)
    assert np.allclose(raster.data[valid], expected[valid], rtol=0, atol=1e-3)
    assert 150 < raster.data[valid].mean() < 450  # Dobson units, not raw counts


def test_cf_scale_factor_add_offset_mean_raw_times_scale_plus_offset(tmp_path):
    """CF: value = raw × scale_factor + add_offset (packed int16 with a fill value)."""
    rng = np.random.default_rng(5)
    raw = rng.integers(-3000, 3000, (1, 36, 18)).astype(np.int16)
    raw[0, 0, 0] = -9999
    path = _imerg_file(tmp_path, raw, scale_factor=np.float32(0.01), add_offset=np.float32(30.0), _FillValue=np.int16(-9999))
    raster = read_granule(path, IMERG)
    north_up = raw[0].T[::-1].astype(np.float64)
    valid = north_up != -9999
    assert np.array_equal(raster.valid, valid)
    assert np.allclose(raster.data[valid], north_up[valid] * 0.01 + 30.0, atol=1e-4)


def test_convention_is_overridable_in_the_dataset_file(tmp_path):
    """A file with CF names but the HDF-EOS formula (as MODIS uses): reader.scale_convention."""
    raw = np.full((1, 36, 18), 500, np.int16)
    path = _imerg_file(tmp_path, raw, scale_factor=np.float32(0.5), add_offset=np.float32(100.0), _FillValue=np.int16(-1))
    assert np.allclose(read_granule(path, IMERG).data, 500 * 0.5 + 100)
    hdfeos = IMERG.model_copy(update={"scale_convention": "hdfeos"})
    assert np.allclose(read_granule(path, hdfeos).data, 0.5 * (500 - 100))
    # values from the dataset file replace the attributes, under the chosen formula
    override = IMERG.model_copy(update={"scale_convention": "cf", "scale_factor": 2.0, "add_offset": -1.0})
    assert np.allclose(read_granule(path, override).data, 500 * 2.0 - 1.0)


def test_both_conventions_disagreeing_is_refused_naming_the_setting(tmp_path):
    values = omi_values(seed=3)
    path = _omi_file(tmp_path, values, scale_factor=np.float64(2.0), add_offset=np.float64(5.0))
    with pytest.raises(GranuleReadError, match=r"omi\.he5.*ScaleFactor/Offset.*scale_factor/add_offset.*reader\.scale_convention"):
        read_granule(path, OMI)
    expected = _north_up(values)
    hdfeos = read_granule(path, OMI.model_copy(update={"scale_convention": "hdfeos"}))  # ScaleFactor 1, Offset 0
    assert hdfeos.valid.sum() > 0 and np.allclose(hdfeos.data[hdfeos.valid], expected[hdfeos.valid])
    cf = read_granule(path, OMI.model_copy(update={"scale_convention": "cf"}))
    assert np.allclose(cf.data[cf.valid], expected[cf.valid] * 2 + 5)


# -- valid range ----------------------------------------------------------------------------

def test_aura_validrange_marks_out_of_range_values_nodata(tmp_path):
    values = omi_values(seed=4)
    values[400, 100], values[401, 100] = 20.0, 900.0  # outside ValidRange [50, 700]
    raster = read_granule(_omi_file(tmp_path, values), OMI)
    row = 719 - 400  # flipped north-up
    assert not raster.valid[row, 100] and not raster.valid[row - 1, 100]
    assert raster.data[row, 100] == raster.nodata and raster.data[row - 1, 100] == raster.nodata
    assert raster.valid.sum() == ((values != OMI_FILL) & (values >= 50) & (values <= 700)).sum()


@pytest.mark.parametrize(
    "attrs",
    [
        {"valid_range": np.array([0, 2000], np.int16)},
        {"valid_min": np.int16(0), "valid_max": np.int16(2000)},
    ],
    ids=["valid_range", "valid_min+valid_max"],
)
def test_cf_valid_range_applies_to_packed_values(tmp_path, attrs):
    raw = np.full((1, 36, 18), 1000, np.int16)
    raw[0, 3, 4], raw[0, 5, 6] = -5, 2500
    path = _imerg_file(tmp_path, raw, scale_factor=np.float32(0.1), _FillValue=np.int16(-9999), **attrs)
    raster = read_granule(path, IMERG)
    assert raster.valid.sum() == 36 * 18 - 2
    assert np.allclose(raster.data[raster.valid], 100.0)


def test_valid_range_can_be_ignored_or_replaced(tmp_path):
    values = omi_values(seed=4)
    values[400, 100] = 20.0
    path = _omi_file(tmp_path, values)
    row = 719 - 400
    ignored = read_granule(path, OMI.model_copy(update={"valid_range": "ignore"}))
    assert ignored.valid[row, 100] and ignored.data[row, 100] == pytest.approx(20.0)
    narrowed = read_granule(path, OMI.model_copy(update={"valid_range": (250.0, 350.0)}))
    assert narrowed.data[narrowed.valid].min() >= 250 and narrowed.data[narrowed.valid].max() <= 350


def test_reader_settings_in_yaml(tmp_path):
    text = Path(__file__).resolve().parents[1].joinpath("cog_assets/datasets/omdoao3e.yaml").read_text()
    good = text.replace("  units: DU\n", "  units: DU\n  scale_convention: hdfeos\n  valid_range: [50, 700]\n")
    (tmp_path / "omdoao3e.yaml").write_text(good)
    reader = load_dataset(tmp_path / "omdoao3e.yaml").reader
    assert (reader.scale_convention, reader.valid_range) == ("hdfeos", (50.0, 700.0))
    (tmp_path / "omdoao3e.yaml").write_text(text.replace("  units: DU\n", "  units: DU\n  scale_convention: netcdf\n"))
    with pytest.raises(DatasetConfigError, match=r"reader\.scale_convention"):
        load_dataset(tmp_path / "omdoao3e.yaml")
    (tmp_path / "omdoao3e.yaml").write_text(text.replace("  units: DU\n", "  units: DU\n  valid_range: [700, 50]\n"))
    with pytest.raises(DatasetConfigError, match=r"reader\.valid_range"):
        load_dataset(tmp_path / "omdoao3e.yaml")


# -- HDF-EOS grid metadata ------------------------------------------------------------------

def _with_struct_metadata(tmp_path: Path, old: str, new: str) -> Path:
    path = _omi_file(tmp_path)
    with h5py.File(path, "r+") as f:
        text = f["HDFEOS INFORMATION/StructMetadata.0"][()].decode()
        assert old in text
        del f["HDFEOS INFORMATION/StructMetadata.0"]
        f["HDFEOS INFORMATION"].create_dataset("StructMetadata.0", data=text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("Projection=HE5_GCTP_GEO", "Projection=HE5_GCTP_PS", "Projection"),
        ("GridOrigin=HE5_HDFE_GD_UL", "GridOrigin=HE5_HDFE_GD_LL", "GridOrigin"),
        ('DimList=("YDim","XDim")', 'DimList=("XDim","YDim")', "DimList"),
        ("XDim=1440", "XDim=720", "XDim"),
        ('DataFieldName="ColumnAmountO3"', 'DataFieldName="Other"', "DataField"),
    ],
    ids=["projection", "origin", "dimlist", "xdim", "unlisted-field"],
)
def test_grid_metadata_the_reader_cannot_place_is_refused(tmp_path, old, new, field):
    path = _with_struct_metadata(tmp_path, old, new)
    with pytest.raises(GranuleReadError) as error:
        read_granule(path, OMI)
    message = str(error.value)
    assert "omi.he5" in message and field in message and "ColumnAmountO3" in message


def test_grid_attribute_projection_is_checked_without_struct_metadata(tmp_path):
    path = tmp_path / "omi.he5"
    path.write_bytes(make_omi_granule(struct_metadata=False).content)
    with h5py.File(path, "r+") as f:
        f["HDFEOS/GRIDS/ColumnAmountO3"].attrs["Projection"] = "Polar Stereographic"
    with pytest.raises(GranuleReadError, match=r"omi\.he5.*Projection.*Polar Stereographic"):
        read_granule(path, OMI.model_copy(update={"orientation": "south_up"}))


def test_a_cog_described_as_it_is_counts_fill_in_its_own_data_type(tmp_path):
    """A float64 COG whose nodata (-9999.9) has no exact float32 value: its fill pixels are not
    valid data (a COG passed through from a bucket, or stac_item re-run alone, reads it so)."""
    import rasterio
    from rasterio.transform import from_origin

    from cog_assets.formats.cog import read_info

    data = np.full((64, 64), 250.0, dtype=np.float64)
    data[:16] = -9999.9
    path = tmp_path / "f64.tif"
    with rasterio.open(path, "w", driver="COG", width=64, height=64, count=1, dtype="float64", crs="EPSG:4326",
                       transform=from_origin(0, 64, 1, 1), nodata=-9999.9) as out:
        out.write(data, 1)
    info = read_info(path)
    assert info.statistics["valid_pixels"] == 48 * 64 and info.statistics["minimum"] == 250.0


def test_a_cog_of_several_bands_is_converted_to_the_band_read_not_passed_through(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from cog_assets.dataset import ReaderConfig
    from cog_assets.formats.geotiff import use_as_is

    path = tmp_path / "two.tif"
    with rasterio.open(path, "w", driver="COG", width=64, height=64, count=2, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(0, 64, 1, 1), nodata=-1.0) as out:
        out.write(np.ones((2, 64, 64), dtype=np.float32))
    reader = ReaderConfig(format="geotiff")
    assert not use_as_is(path, reader, tmp_path / "out.tif") and not (tmp_path / "out.tif").exists()
