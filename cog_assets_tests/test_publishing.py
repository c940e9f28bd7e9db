"""Publishing through Dagster to a real stac-fastapi-pgstac: idempotence, duplicate policy,
revisions and deletions through the sensor, reconciliation and disaster recovery."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from dagster import AssetCheckKey, AssetKey
from pystac_client import Client

from cog_assets.dataset import DuplicatePolicy
from cog_assets.defs.maintenance import IN_SYNC_CHECK
from .helpers import partition_of, stored_cog
from cog_assets.store.objects import sha256_of

from .cmr_server import FakeCmr
from .granule_files import make_omi_granule, omi_values
from .helpers import add_omi_granule, Platform, failure_messages, now_utc

FIRST_DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


def _add_day(cmr: FakeCmr, day: datetime, seed: int = 1):
    return add_omi_granule(cmr, make_omi_granule(omi_values(seed=seed)).content, day)


def _api_items(url: str) -> dict[str, dict]:
    response = httpx.get(f"{url}/collections/omdoao3e/items", params={"limit": 1000}, timeout=30)
    if response.status_code == 404:  # no collection, so no items
        return {}
    return {item["id"]: item for item in response.json()["features"]}


def _without_links(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "links"}


def test_published_items_are_found_by_pystac_client_and_open(
    fake_cmr, omi, instance, s3_prefix_url, seaweedfs, stac_api_url
):
    platform = Platform(omi, fake_cmr, s3_prefix_url, instance, seaweedfs, stac_api_url)
    granules = [_add_day(fake_cmr, FIRST_DAY + timedelta(days=i), seed=i) for i in range(3)]
    for granule in granules:
        result = platform.run(granule.concept_id)
        assert result.success, failure_messages(result)
        assert platform.metadata(granule.concept_id)["stac_api"] == "created"
    published = _api_items(stac_api_url)

    client = Client.open(stac_api_url)
    found = client.search(
        collections=["omdoao3e"], datetime="2012-01-02T06:00:00Z/2012-01-03T06:00:00Z", bbox=[-10, -10, 10, 10]
    ).item_collection()
    assert sorted(item.id for item in found) == sorted(g.file_name[:-4] for g in granules[1:3])
    assert not list(client.search(collections=["omdoao3e"], datetime="2013-01-01/2013-12-31").items())

    item = found.items[0]
    href = item.assets["cog_default"].href
    assert href.startswith(f"{s3_prefix_url}/omdoao3e/cogs/")
    endpoint = seaweedfs.endpoint.removeprefix("http://")
    with rasterio.Env(AWS_S3_ENDPOINT=endpoint, AWS_HTTPS="NO", AWS_VIRTUAL_HOSTING="FALSE", AWS_REGION="us-east-1"):
        with rasterio.open(href.replace("s3://", "/vsis3/", 1)) as src:
            band = src.read(1)
            assert src.crs.to_epsg() == 4326 and band.shape == (720, 1440)
    seed = [g.file_name[:-4] for g in granules].index(item.id)
    assert np.array_equal(band, np.flipud(omi_values(seed=seed)))  # north-up, fill kept as nodata

    # the API's collection extent covers the items
    extent = client.get_collection("omdoao3e").extent
    assert extent.temporal.intervals[0][0] <= FIRST_DAY and extent.temporal.intervals[0][1] is None

    # materializing the same partitions again: same count, same items, nothing re-sent
    for granule in granules:
        assert platform.run(granule.concept_id).success
        assert platform.metadata(granule.concept_id)["stac_api"] == "skipped"
    again = _api_items(stac_api_url)
    assert again.keys() == published.keys() and len(again) == 3
    assert {k: _without_links(v) for k, v in again.items()} == {k: _without_links(v) for k, v in published.items()}


def test_duplicate_policy_error_fails_the_partition_and_writes_nothing(
    fake_cmr, omi, instance, local_storage_url, stac_api_url
):
    strict = omi.model_copy(update={"stac": omi.stac.model_copy(update={"duplicates": DuplicatePolicy(same_revision="error")})})
    platform = Platform(strict, fake_cmr, local_storage_url, instance, stac_api_url=stac_api_url)
    granule = _add_day(fake_cmr, FIRST_DAY)
    assert platform.run(granule.concept_id).success
    item_id = granule.file_name[:-4]
    stored = platform.archive().read_json(platform.archive().item_keys("omdoao3e")[item_id])
    before = _api_items(stac_api_url)[item_id]

    result = platform.run(granule.concept_id)
    assert not result.success
    (message,) = failure_messages(result)
    assert f"item {item_id} is already in the STAC API with the same CMR revision (1)" in message
    assert "'error'" in message
    assert platform.archive().read_json(platform.archive().item_keys("omdoao3e")[item_id]) == stored
    assert _api_items(stac_api_url)[item_id] == before


def test_reconciliation_finds_a_missing_item_and_republish_restores_it(
    fake_cmr, omi, instance, local_storage_url, stac_api_url
):
    platform = Platform(omi, fake_cmr, local_storage_url, instance, stac_api_url=stac_api_url)
    granules = [_add_day(fake_cmr, FIRST_DAY + timedelta(days=i)) for i in range(3)]
    for granule in granules:
        assert platform.run(granule.concept_id).success
    original = _api_items(stac_api_url)
    evaluation = platform.check()
    assert evaluation.passed and evaluation.metadata["storage_items"].value == 3

    victim = granules[1].file_name[:-4]
    assert httpx.delete(f"{stac_api_url}/collections/omdoao3e/items/{victim}").status_code == 200
    evaluation = platform.check()
    assert not evaluation.passed
    assert evaluation.metadata["missing_in_api_sample"].value == [victim]
    assert evaluation.metadata["missing_in_storage"].value == 0
    check_key = AssetCheckKey(AssetKey(["omdoao3e", "stac_collection"]), IN_SYNC_CHECK)
    assert instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1)

    assert platform.republish().success
    restored = _api_items(stac_api_url)
    assert _without_links(restored[victim]) == _without_links(original[victim])
    assert platform.check().passed

    # disaster recovery: the whole collection is gone from the API
    assert httpx.delete(f"{stac_api_url}/collections/omdoao3e").status_code == 200
    assert not platform.check().passed
    assert platform.republish().success
    assert {k: _without_links(v) for k, v in _api_items(stac_api_url).items()} == {
        k: _without_links(v) for k, v in original.items()
    }
    assert platform.check().passed


def test_revision_and_deletion_through_the_sensor(fake_cmr, omi, instance, local_storage_url, stac_api_url):
    platform = Platform(omi, fake_cmr, local_storage_url, instance, stac_api_url=stac_api_url)
    platform.tick()  # switched on
    day = (now_utc() - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    granule = _add_day(fake_cmr, day, seed=1)
    item_id = granule.file_name[:-4]

    def run_requested():
        result = platform.tick()
        for outcome in platform.execute(result):
            assert outcome.success, failure_messages(outcome)
        return result

    run_requested()
    first = _api_items(stac_api_url)[item_id]
    assert first["properties"]["cmr:revision_id"] == 1

    fake_cmr.revise(granule.concept_id, content=make_omi_granule(omi_values(seed=7)).content)
    result = run_requested()
    assert [r.tags.get("cog_assets/cmr_revision") for r in result.run_requests] == ["2"]  # collection: once
    second = _api_items(stac_api_url)[item_id]
    assert second["properties"]["cmr:revision_id"] == 2
    assert second["properties"]["updated"] >= first["properties"]["updated"]  # CMR may drop the milliseconds
    cog = stored_cog(Path(local_storage_url[len("file://"):]), "omdoao3e", item_id)
    assert second["assets"]["cog_default"]["file:checksum"] == "1220" + sha256_of(cog)
    assert second["assets"]["cog_default"]["file:checksum"] != first["assets"]["cog_default"]["file:checksum"]
    assert platform.metadata(granule.concept_id)["stac_api"] == "replaced"

    fake_cmr.delete(granule.concept_id)
    run_requested()
    assert item_id not in _api_items(stac_api_url)
    assert not list(Client.open(stac_api_url).search(collections=["omdoao3e"], ids=[item_id]).items())
    storage = platform.archive().storage
    for folder in ("items", "cogs", "granules", "cmr"):
        assert storage.list_keys(f"omdoao3e/{folder}/") == []
    tombstone = json.loads(storage.get_bytes(f"omdoao3e/deleted/{granule.concept_id}.json"))
    assert tombstone["cmr_deletion"]["concept_id"] == granule.concept_id and tombstone["item_ids"] == [item_id]
    assert partition_of(granule) not in instance.get_dynamic_partitions("omdoao3e_granules")
