"""A dataset found in a bucket, end to end: VEDA-named objects on SeaweedFS go through the S3
sensor, the chain (COGs used as they are, plain GeoTIFFs converted, HDF5 through its reader)
and the STAC API, and the promise is checked after each case: the live objects at the source =
the granules with a stored item = the items in the STAC API, nothing superseded left."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from dagster import AssetKey, AssetRecordsFilter, materialize
from rio_cogeo.cogeo import cog_validate

from cog_assets.defs.aoi_statistics import build_aoi_statistics
from cog_assets.defs.aois import AoiFolder
from cog_assets.defs.io_manager import CogAssetsIOManager
from cog_assets.processing import invariant
from cog_assets.sources.source import source_for
from cog_assets.stac.api import StacApi

from .granule_files import IMERG_FILL, imerg_values, make_imerg_granule
from .helpers import Platform, failure_messages, source_bucket_resource
from .veda_files import (
    NO2_FILL,
    after_second_of,
    cog,
    no2_name,
    no2_values,
    plain_geotiff,
    put,
)


@pytest.fixture
def no2(datasets, seaweedfs):
    """The shipped no2_monthly dataset, its source a fresh prefix of the test bucket."""
    prefix = f"veda-{uuid.uuid4().hex[:8]}/no2-monthly/"
    dataset = datasets["no2_monthly"]
    source = dataset.source.model_copy(update={"url": f"s3://{seaweedfs.bucket}/{prefix}"})
    return dataset.model_copy(update={"source": source}), prefix


@pytest.fixture
def platform(no2, instance, s3_prefix_url, seaweedfs, stac_api_url) -> Platform:
    return Platform(no2[0], None, s3_prefix_url, instance, seaweedfs, stac_api_url, relist_minutes=0)


def _tick_and_run(platform: Platform):
    result, outcomes = platform.tick_and_execute()
    for outcome in outcomes:
        assert outcome.success, failure_messages(outcome)
    return result, outcomes


def _in_step(platform: Platform, live: int) -> invariant.InvariantReport:
    source = source_for(platform.dataset, s3=source_bucket_resource(platform.s3))
    report = invariant.check(source, platform.archive(), StacApi(url=platform.stac_api_url), platform.dataset, hash_all=True)
    assert report.holds, report.summary()
    assert report.live_in_cmr == report.stored_items == report.api_items == live, report.metadata()
    assert report.pending_objects == report.awaiting_processing == 0, report.metadata()
    return report


def _api_items(platform: Platform, collection: str = "no2_monthly") -> dict[str, dict]:
    response = httpx.get(f"{platform.stac_api_url}/collections/{collection}/items", params={"limit": 100}, timeout=30)
    return {item["id"]: item for item in response.json().get("features", [])}


def _stored_cog(platform: Platform, item: dict) -> bytes:
    storage = platform.archive().storage
    return storage.get_bytes(storage.key_of(item["assets"]["cog_default"]["href"]))


def _cog_metadata(platform: Platform, partition: str) -> dict:
    """The latest ``cog`` materialization's metadata of one partition."""
    records = platform.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(["no2_monthly", "cog"]), asset_partitions=[partition]), limit=1
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_veda_named_objects_become_items_cogs_passed_through_and_geotiffs_converted(platform, no2, seaweedfs, tmp_path,
                                                                                   capfd):
    client, prefix = seaweedfs.client(), no2[1]
    platform.tick()  # switched on: the prefix is empty
    files = {
        (2020, 1): cog(no2_values(1), tmp_path / "jan.tif"), (2020, 2): cog(no2_values(2), tmp_path / "feb.tif"),
        (2020, 3): plain_geotiff(no2_values(3), tmp_path / "mar.tif"), (2020, 4): plain_geotiff(no2_values(4), tmp_path / "apr.tif"),
    }
    for (year, month), path in files.items():
        put(client, seaweedfs.bucket, prefix + no2_name(year, month), path)
    put(client, seaweedfs.bucket, prefix + "README.txt", b"monthly NO2")
    put(client, seaweedfs.bucket, prefix + no2_name(2020, 1) + ".aux.xml", b"<PAMDataset/>")
    capfd.readouterr()
    _tick_and_run(platform)
    tick_log = capfd.readouterr().err
    assert ("listed 6 objects in 1 pages; 4 match the pattern, 2 do not (e.g. "
            "OMI_trno2_0.10x0.10_202001_Col3_V4.nc.tif.aux.xml, README.txt)") in tick_log
    assert len(platform.harness.added) == 4
    items = _api_items(platform)
    assert set(items) == {no2_name(y, m)[: -len(".tif")] for y, m in files}
    for (year, month), path in files.items():
        item = items[no2_name(year, month)[: -len(".tif")]]
        begin = datetime(year, month, 1, tzinfo=timezone.utc)
        assert item["properties"]["start_datetime"] == f"{begin:%Y-%m-%dT%H:%M:%SZ}"  # from the name, never now
        assert item["properties"]["end_datetime"].startswith(f"{year}-{month:02d}-{[31, 29, 31, 30][month - 1]}T23:59:59")
        assert item["properties"]["cog_assets:source_url"] == f"s3://{seaweedfs.bucket}/{prefix}{no2_name(year, month)}"
        stored = _stored_cog(platform, item)
        assert item["assets"]["cog_default"]["file:checksum"] == "1220" + hashlib.sha256(stored).hexdigest()
        cog_written = _cog_metadata(platform, f"{begin:%Y-%m-%d}_{item['id']}")["cog_written"]
        if month <= 2:  # a valid COG is used as it is: byte for byte
            assert stored == path.read_bytes() and cog_written == "the source file as it is (already a valid COG)"
        else:  # a plain GeoTIFF is converted to a valid COG holding the same values
            assert stored != path.read_bytes() and not cog_validate(str(path), quiet=True)[0] and cog_written == "converted"
            local = tmp_path / f"stored-{month}.tif"
            local.write_bytes(stored)
            assert cog_validate(str(local), quiet=True)[0]
            with rasterio.open(local) as written, rasterio.open(path) as original:
                assert np.array_equal(written.read(1), original.read(1)) and written.nodata == float(NO2_FILL)
    _in_step(platform, live=4)


def test_an_overwrite_is_a_revision_a_same_etag_upload_is_not_and_a_deletion_is_withdrawn(platform, no2, seaweedfs, tmp_path):
    client, bucket, prefix = seaweedfs.client(), seaweedfs.bucket, no2[1]
    platform.tick()
    first = {m: put(client, bucket, prefix + no2_name(2021, m), cog(no2_values(m), tmp_path / f"{m}.tif")) for m in (1, 2, 3)}
    _tick_and_run(platform)
    feb = no2_name(2021, 2)[: -len(".tif")]
    before = _api_items(platform)[feb]
    after_second_of(max(first.values()))
    revised = put(client, bucket, prefix + no2_name(2021, 2), cog(no2_values(7), tmp_path / "feb-v2.tif"))
    _, outcomes = _tick_and_run(platform)
    assert len(outcomes) == 1  # one run: February's revision
    after = _api_items(platform)[feb]
    assert after["properties"]["cog_assets:source_revision"] == int(revised.timestamp()) > before["properties"]["cog_assets:source_revision"]
    assert after["assets"]["cog_default"]["file:checksum"] != before["assets"]["cog_default"]["file:checksum"]
    _in_step(platform, live=3)  # nothing of February's first revision left

    put(client, bucket, prefix + no2_name(2021, 3), (tmp_path / "3.tif").read_bytes())  # same bytes again
    result = platform.tick()
    assert not result.run_requests and "1 re-uploaded with the same ETag (not a revision)" in result.skip_reason.skip_message

    client.delete_object(Bucket=bucket, Key=prefix + no2_name(2021, 1))
    _, outcomes = _tick_and_run(platform)
    assert [o.job_def.name for o in outcomes] == ["no2_monthly_withdraw"]
    assert no2_name(2021, 1)[: -len(".tif")] not in _api_items(platform)
    assert not any("202101" in key for key in platform.instance.get_dynamic_partitions("no2_monthly_granules"))
    _in_step(platform, live=2)


def test_hdf5_objects_in_a_bucket_go_through_the_existing_reader(datasets, no2, instance, s3_prefix_url, seaweedfs,
                                                                stac_api_url, tmp_path):
    """NetCDF-4/HDF5 objects (here IMERG-like) with the hdf5_latlon_grid reader."""
    gpm, prefix = datasets["gpm_3imerghh"], no2[1]
    source = no2[0].source.model_copy(update={"pattern": r"^3B-MO\.(?P<year>\d{4})(?P<month>\d{2})\.nc4$"})
    dataset = no2[0].model_copy(update={"source": source, "reader": gpm.reader, "stac": gpm.stac})
    platform = Platform(dataset, None, s3_prefix_url, instance, seaweedfs, stac_api_url, relist_minutes=0)
    platform.tick()
    values = imerg_values(n_lon=360, n_lat=180)
    put(seaweedfs.client(), seaweedfs.bucket, prefix + "3B-MO.202005.nc4", make_imerg_granule(values).content)
    _tick_and_run(platform)
    (item,) = _api_items(platform).values()
    assert item["id"] == "3B-MO.202005" and item["properties"]["start_datetime"] == "2020-05-01T00:00:00Z"
    local = tmp_path / "stored.tif"
    local.write_bytes(_stored_cog(platform, item))
    assert cog_validate(str(local), quiet=True)[0]
    band = item["assets"]["cog_default"]["raster:bands"][0]
    valid = values[0][values[0] != IMERG_FILL]
    assert band["statistics"]["maximum"] == pytest.approx(float(valid.max()), rel=1e-5)


def test_aoi_statistics_cover_the_bucket_datasets_cogs(no2, instance, local_storage_url, seaweedfs, tmp_path):
    """The third dataset goes through the AOI statistics like the others: a row per COG (a
    passed-through COG and a converted GeoTIFF), dated from the names, and a mean equal to an
    independent cos(latitude)-weighted mean of the cells inside a pixel-aligned box."""
    platform = Platform(no2[0], None, local_storage_url, instance, seaweedfs, relist_minutes=0)
    client, prefix = seaweedfs.client(), no2[1]
    platform.tick()
    values = {1: no2_values(1), 2: no2_values(2)}
    put(client, seaweedfs.bucket, prefix + no2_name(2020, 1), cog(values[1], tmp_path / "jan.tif"))
    put(client, seaweedfs.bucket, prefix + no2_name(2020, 2), plain_geotiff(values[2], tmp_path / "feb.tif"))
    _tick_and_run(platform)
    root = Path(local_storage_url[len("file://"):])
    (root / "aois").mkdir(exist_ok=True)
    box = [[[0, 10], [10, 10], [10, 20], [0, 20], [0, 10]]]  # lon 0..10, lat 10..20, on 0.5° cell edges
    (root / "aois" / "box.geojson").write_text(json.dumps({"type": "Polygon", "coordinates": box}))
    instance.add_dynamic_partitions("aois", ["box"])
    stats_key = AssetKey(["no2_monthly", "aoi_statistics"])
    resources = platform.resources() | {"aois": AoiFolder(url=(root / "aois").as_uri()),
                                        "io_manager": CogAssetsIOManager(storage_url=local_storage_url)}
    done = materialize([platform.built.chain, build_aoi_statistics(no2[0], AssetKey(["no2_monthly", "cog"]))],
                       selection=[stats_key], partition_key="box", resources=resources, instance=instance)
    assert done.success
    rows = pq.read_table(root / "no2_monthly" / "aoi_statistics" / "box.parquet").to_pylist()
    assert [(r["item_id"], r["start_datetime"].month) for r in rows] == [
        (no2_name(2020, 1)[: -len(".tif")], 1), (no2_name(2020, 2)[: -len(".tif")], 2)]
    lat = 90 - 0.25 - 0.5 * np.arange(360)
    inside_rows = (lat > 10) & (lat < 20)
    inside_cols = slice(360, 380)  # lon 0..10
    weights = np.cos(np.radians(lat[inside_rows]))[:, None] * np.ones((1, 20))
    for row, month in zip(rows, (1, 2)):
        cells = values[month][inside_rows, inside_cols].astype(np.float64)
        expected = float((cells * weights).sum() / weights.sum())
        assert row["valid_pixels"] == 400 and row["coverage"] == pytest.approx(1.0, abs=1e-6)
        assert row["mean"] == pytest.approx(expected, rel=1e-4)
