"""The processing chain through Dagster: granule → cog → stac_item, on a folder and on S3."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from dagster import AssetKey, materialize

from cog_assets.defs.assets import build_dataset_assets
from cog_assets.store.layout import granule_key

from .cmr_server import FakeCmr
from .granule_files import SyntheticGranule, make_imerg_granule, make_omi_granule, omi_values
from .helpers import Platform, add_omi_granule, chain_resources, failure_messages, imerg_file_name, stored_cog, stored_item

OMI_DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)
IMERG_START = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)


def _add_omi(cmr: FakeCmr, granule: SyntheticGranule, day: datetime = OMI_DAY, **extra):
    return add_omi_granule(cmr, granule.content, day, **extra)


def _add_imerg(cmr: FakeCmr, granule: SyntheticGranule):
    return cmr.add_granule(
        short_name="GPM_3IMERGHH", version="07", file_name=imerg_file_name(IMERG_START), begin=IMERG_START,
        end=IMERG_START + timedelta(minutes=29, seconds=59, milliseconds=999), content=granule.content,
    )


def _run(dataset, cmr, storage_url, instance, partition, s3=None, **kwargs):
    return Platform(dataset, cmr, storage_url, instance, s3=s3, **kwargs).run(partition)


def _root(url: str) -> Path:
    return Path(url[len("file://"):])


def _latest_metadata(instance, key: list[str], partition: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(key))
    assert event.dagster_event.partition in (partition, f"{OMI_DAY:%Y-%m-%d}_{partition}")
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_omi_chain_on_local_folder(fake_cmr, datasets, instance, local_storage_url):
    dataset = datasets["omdoao3e"]
    synthetic = make_omi_granule()
    granule = _add_omi(fake_cmr, synthetic)
    result = _run(dataset, fake_cmr, local_storage_url, instance, granule.concept_id)
    assert result.success, failure_messages(result)
    root = _root(local_storage_url)
    item_id = granule.file_name[: -len(".he5")]

    stored = root / granule_key("omdoao3e", granule.concept_id, 1, granule.file_name)
    assert stored.read_bytes() == synthetic.content
    cog = stored_cog(root, "omdoao3e", item_id)
    for name, path in [("granule", stored), ("cog", cog), ("stac_item", stored_item(root, "omdoao3e", item_id))]:
        metadata = _latest_metadata(instance, ["omdoao3e", name], granule.concept_id)
        assert metadata["uri"] == path.as_uri()
        assert metadata["size_bytes"] == path.stat().st_size
        assert len(metadata["sha256"]) == 64
    assert cog.parent == root / "omdoao3e" / "cogs" / granule.concept_id / "r1"
    assert cog.name == f"{item_id}.{_latest_metadata(instance, ['omdoao3e', 'cog'], granule.concept_id)['sha256'][:12]}.tif"

    cog_meta = _latest_metadata(instance, ["omdoao3e", "cog"], granule.concept_id)
    assert 0.85 < cog_meta["valid_fraction"] < 0.95
    assert cog_meta["cmr_record"] == f"{fake_cmr.url}/search/concepts/{granule.concept_id}/1.umm_json"
    mean = cog_meta["mean (DU)"]
    assert mean == float(f"{mean:.6g}") and 250 < mean < 350  # rounded once, with units
    assert cog_meta["preview"].startswith("![preview of the COG](data:image/webp;base64,")
    assert len(cog_meta["preview"]) < 4000  # what each materialization event carries
    checks = instance.event_log_storage.get_asset_check_execution_history(
        __import__("dagster").AssetCheckKey(AssetKey(["omdoao3e", "cog"]), "valid_cog"), limit=1
    )
    assert checks and checks[0].status.value == "SUCCEEDED"

    item = pystac.Item.from_file(str(stored_item(root, "omdoao3e", item_id)))
    assert item.id == item_id
    assert item.properties["start_datetime"] == "2012-01-01T00:00:00Z"
    assert item.properties["end_datetime"] == "2012-01-01T23:59:59.999000Z"
    assert item.datetime == OMI_DAY
    assert item.properties["cmr:concept_id"] == granule.concept_id and item.properties["cmr:revision_id"] == 1
    asset = item.assets["cog_default"]
    assert asset.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert asset.href == cog.as_uri()
    assert asset.extra_fields["file:size"] == cog_meta["size_bytes"]
    assert asset.extra_fields["file:checksum"] == "1220" + cog_meta["sha256"]
    assert item.properties["proj:code"] == "EPSG:4326"
    thumbnail = item.assets["thumbnail"]
    assert thumbnail.media_type == "image/png" and thumbnail.roles == ["thumbnail"]
    assert Path(thumbnail.href[len("file://"):]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert asset.extra_fields["raster:bands"][0]["statistics"]["mean"] == mean  # the same number
    assert asset.extra_fields["proj:shape"] == [720, 1440]
    band = asset.extra_fields["raster:bands"][0]
    assert band["nodata"] == pytest.approx(-1.2676506e30, rel=1e-6) and band["unit"] == "DU"
    assert item.bbox == [-180.0, -90.0, 180.0, 90.0]
    # no scratch copies left beside the stored objects
    assert not [p for p in root.rglob("*") if p.name.endswith(".partial")]


def _assert_fidelity(cog_path, expected_north_up: np.ndarray, fill: float, transform: Affine, probes):
    with rasterio.open(cog_path) as cog:
        assert cog.crs.to_epsg() == 4326
        assert cog.transform == transform
        assert cog.nodata == np.float32(fill)
        data = cog.read(1)
        source_fill = expected_north_up == np.float32(fill)
        assert np.array_equal(data == np.float32(cog.nodata), source_fill)
        assert np.array_equal(data[~source_fill], expected_north_up[~source_fill])
        for (lon, lat), value in probes:
            row, col = cog.index(lon, lat)
            assert data[row, col] == value


def test_omi_cog_fidelity(fake_cmr, datasets, instance, local_storage_url):
    values = omi_values()
    values[520, 299] = np.float32(432.125)  # lat 40.125, lon -105.125 (south-up row 520)
    synthetic = make_omi_granule(values)
    granule = _add_omi(fake_cmr, synthetic)
    assert _run(datasets["omdoao3e"], fake_cmr, local_storage_url, instance, granule.concept_id).success
    cog = stored_cog(_root(local_storage_url), "omdoao3e", granule.file_name[:-4])
    _assert_fidelity(
        cog, values[::-1], synthetic.fill, Affine(0.25, 0, -180, 0, -0.25, 90),
        [((-105.125, 40.125), np.float32(432.125)), ((-179.875, -89.875), values[0, 0])],
    )


def test_imerg_chain_and_fidelity_on_s3(fake_cmr, datasets, instance, seaweedfs, s3_prefix_url):
    from .granule_files import imerg_values

    values = imerg_values()
    values[0, 1749, 1299] = np.float32(12.5)  # lon -5.05, lat 39.95
    synthetic = make_imerg_granule(values)
    granule = _add_imerg(fake_cmr, synthetic)
    # GPM IMERG is partitioned by UTC day: the partition is the granule's day
    result = _run(datasets["gpm_3imerghh"], fake_cmr, s3_prefix_url, instance, "2024-06-01", s3=seaweedfs)
    assert result.success, failure_messages(result)
    bucket, prefix = s3_prefix_url[len("s3://"):].split("/", 1)
    client = seaweedfs.client()
    item_id = granule.file_name[: -len(".HDF5")]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    cog_key = next(k for k in keys if "/cogs/" in k and k.endswith(".tif"))
    assert cog_key.startswith(f"{prefix}/gpm_3imerghh/cogs/{granule.concept_id}/r1/{item_id}.")
    assert keys == {
        f"{prefix}/gpm_3imerghh/granules/{granule.concept_id}/r1/{granule.file_name}",
        f"{prefix}/gpm_3imerghh/granules/{granule.concept_id}/r1/record.json",
        f"{prefix}/gpm_3imerghh/cmr/{granule.concept_id}.json",
        cog_key,
        cog_key[: -len(".tif")] + ".png",  # the thumbnail beside it
        f"{prefix}/gpm_3imerghh/items/2024/06/{item_id}.json",
        f"{prefix}/gpm_3imerghh/days/2024-06-01.json",
    }
    metadata = _latest_metadata(instance, ["gpm_3imerghh", "cog"], "2024-06-01")
    assert metadata["uri"] == f"s3://{bucket}/{prefix}/gpm_3imerghh/days/2024-06-01.json"
    assert (metadata["granules"], metadata["granules_expected"], metadata["granules_processed"]) == (1, 48, 1)
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/gpm_3imerghh/days/2024-06-01.json")["Body"].read())
    assert [g["concept_id"] for g in manifest["granules"]] == [granule.concept_id]
    cog_uri = manifest["granules"][0]["objects"]["cog"]
    assert cog_uri == f"s3://{bucket}/{cog_key}"
    item = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/gpm_3imerghh/items/2024/06/{item_id}.json")["Body"].read())
    assert item["assets"]["cog_default"]["href"] == cog_uri
    assert item["properties"]["start_datetime"] == "2024-06-01T12:30:00Z"
    local = Path(__import__("tempfile").mkdtemp()) / "c.tif"
    client.download_file(bucket, cog_key, str(local))
    expected = values[0].T[::-1]
    _assert_fidelity(
        local, expected, synthetic.fill, Affine(0.1, 0, -180, 0, -0.1, 90),
        [((-5.05, 39.95), np.float32(12.5))],
    )


def test_static_catalog_is_walkable(fake_cmr, datasets, instance, local_storage_url):
    dataset = datasets["omdoao3e"]
    synthetic = make_omi_granule()
    granules = [_add_omi(fake_cmr, synthetic, OMI_DAY + timedelta(days=i)) for i in range(2)]
    for granule in granules:
        assert _run(dataset, fake_cmr, local_storage_url, instance, granule.concept_id).success
    built = build_dataset_assets(dataset)
    assert materialize([built.stac_collection], resources=chain_resources(fake_cmr, local_storage_url), instance=instance).success
    catalog = pystac.Catalog.from_file(str(_root(local_storage_url) / "catalog.json"))
    collection = catalog.get_child("omdoao3e")
    assert collection.title.startswith("OMI/Aura Ozone")
    items = sorted(item.id for item in collection.get_items(recursive=True))
    assert items == sorted(g.file_name[:-4] for g in granules)
    assert [c.id for c in collection.get_children()] == ["omdoao3e-2012"]  # by year, then month
    item = next(collection.get_items(recursive=True))
    with rasterio.open(item.assets["cog_default"].get_absolute_href()) as cog:
        assert cog.crs.to_epsg() == 4326
    assert collection.extra_fields["item_assets"]["cog_default"]["type"].endswith("profile=cloud-optimized")


def test_rerun_of_same_revision_converges_to_identical_outputs(fake_cmr, datasets, instance, local_storage_url):
    dataset = datasets["omdoao3e"]
    granule = _add_omi(fake_cmr, make_omi_granule())
    root = _root(local_storage_url) / "omdoao3e"
    assert _run(dataset, fake_cmr, local_storage_url, instance, granule.concept_id).success
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert _run(dataset, fake_cmr, local_storage_url, instance, granule.concept_id).success
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
