"""CMR as it really behaves, end to end: the sensor decides, the runs it requests execute
(storage on SeaweedFS, the real STAC API), and the promise is checked after each case —
the live granules in CMR = the granules with a stored item = the items in the STAC API, one
item per concept-id, checksums matching, nothing of a superseded or deleted revision left."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from cog_assets.dataset import DuplicatePolicy
from cog_assets.processing import invariant
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.stac.api import StacApi
from cog_assets.store.objects import StorageError
from cog_assets.store.s3 import S3Storage

from .cmr_server import FakeCmr
from .granule_files import make_imerg_granule, make_omi_granule, omi_values
from .helpers import Platform, failure_messages, imerg_file_name, now_utc, omi_file_name, partition_of
from .http_proxy import FaultProxy, ProxyFault

DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


@pytest.fixture
def platform(omi, fake_cmr, instance, s3_prefix_url, seaweedfs, stac_api_url) -> Platform:
    return Platform(omi, fake_cmr, s3_prefix_url, instance, seaweedfs, stac_api_url)


def assert_in_step(platform: Platform, awaiting: int = 0, allowed: frozenset[str] = frozenset()) -> invariant.InvariantReport:
    """The invariant, every COG hashed; ``allowed`` names violation kinds a case expects."""
    report = invariant.check(
        CmrClient(base_url=platform.cmr.url), platform.archive(), StacApi(url=platform.stac_api_url),
        platform.dataset, hash_all=True,
    )
    unexpected = {k: v for k, v in report.violations.items() if v and k not in allowed}
    assert not unexpected, report.summary()
    assert report.awaiting_processing == awaiting and report.pending_objects == 0, report.metadata()
    return report


def _add(cmr: FakeCmr, day: datetime, seed: int = 1, file_name: str | None = None):
    content = make_omi_granule(omi_values(seed=seed)).content
    return cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=file_name or omi_file_name(day),
                           begin=day, end=day + timedelta(days=1, milliseconds=-1), content=content)


def _revise(cmr: FakeCmr, granule, seed: int, file_name: str | None = None):
    content = make_omi_granule(omi_values(seed=seed)).content
    return cmr.revise(granule.concept_id, content=content, file_name=file_name or granule.file_name)


def _tick_and_run(platform: Platform) -> list:
    result, outcomes = platform.tick_and_execute()
    for outcome in outcomes:
        assert outcome.success, failure_messages(outcome)
    return outcomes


def _api_ids(platform: Platform) -> set[str]:
    response = httpx.get(f"{platform.stac_api_url}/collections/omdoao3e/items", params={"limit": 1000}, timeout=30)
    return {item["id"] for item in response.json().get("features", [])} if response.status_code == 200 else set()


def _stored(platform: Platform) -> set[str]:
    return set(platform.archive().storage.list_keys("omdoao3e/"))


def _snapshot(platform: Platform) -> dict[str, str]:
    """Every stored object of the dataset with its content's hash."""
    storage = platform.archive().storage
    return {key: hashlib.sha256(storage.get_bytes(key)).hexdigest() for key in storage.list_keys("omdoao3e/")}


def test_a_renamed_revision_replaces_the_item_and_leaves_nothing_of_the_old_one(platform, fake_cmr):
    """OMI and GPM names carry the production time: reprocessing renames the file."""
    platform.tick()  # switched on
    granule = _add(fake_cmr, DAY, seed=1, file_name="OMI-Aura_L3-OMDOAO3e_2012m0101_v003-2012m0103t014459.he5")
    _tick_and_run(platform)
    assert _api_ids(platform) == {granule.file_name[:-4]}
    before = _stored(platform)
    renamed = _revise(fake_cmr, granule, seed=2, file_name="OMI-Aura_L3-OMDOAO3e_2012m0101_v003-2012m0110t020000.he5")
    _tick_and_run(platform)
    assert _api_ids(platform) == {renamed.file_name[:-4]}
    assert platform.archive().item_ids("omdoao3e") == [renamed.file_name[:-4]]
    after = _stored(platform)
    assert not any(key in after for key in before if "/items/" in key or "/granules/" in key or "/cogs/" in key)
    assert_in_step(platform)


def test_a_revision_refused_by_the_api_policy_leaves_the_live_item_and_its_cog_intact(platform, fake_cmr, omi):
    platform.tick()
    granule = _add(fake_cmr, DAY, seed=1)
    _tick_and_run(platform)
    live = _snapshot(platform)
    strict = Platform(omi.model_copy(update={"stac": omi.stac.model_copy(update={"duplicates": DuplicatePolicy(new_revision="error")})}),
                      fake_cmr, platform.storage_url, platform.instance, platform.s3, platform.stac_api_url)
    strict.harness.cursor = platform.harness.cursor
    _revise(fake_cmr, granule, seed=2)  # same name, new bytes
    result, (run,) = strict.tick_and_execute()
    assert not run.success and "stac.duplicates policy for that case is 'error'" in "".join(failure_messages(run))
    assert _snapshot(platform) == live  # not one object written, replaced or removed
    report = assert_in_step(platform, allowed=frozenset({"items behind CMR's revision"}))
    assert len(report.violations["items behind CMR's revision"]) == 1  # in step with CMR: not yet
    platform.harness.cursor = strict.harness.cursor
    fake_cmr.revise(granule.concept_id)  # a later revision, processed under the default policy
    _tick_and_run(platform)
    assert_in_step(platform)


def test_a_failed_conversion_of_a_new_revision_keeps_the_previous_one(platform, fake_cmr):
    platform.tick()
    granule = _add(fake_cmr, DAY, seed=1)
    _tick_and_run(platform)
    live = _snapshot(platform)
    fake_cmr.revise(granule.concept_id, content=b"not an HDF5 file at all")
    result, (run,) = platform.tick_and_execute()
    assert not run.success and "not a readable HDF5 file" in "".join(failure_messages(run))
    assert _snapshot(platform) == live
    assert_in_step(platform, allowed=frozenset({"items behind CMR's revision"}))


def test_imerg_final_published_months_after_its_data_is_processed(fake_cmr, datasets, instance, s3_prefix_url, seaweedfs, stac_api_url):
    """IMERG Final appears ~3.5 months after its data: 'new' is publication, not data time."""
    gpm = datasets["gpm_3imerghh"]
    platform = Platform(gpm, fake_cmr, s3_prefix_url, instance, seaweedfs, stac_api_url)
    platform.tick()
    start = (now_utc() - timedelta(days=106)).replace(hour=12, minute=30, second=0, microsecond=0)
    granule = fake_cmr.add_granule(
        short_name="GPM_3IMERGHH", version="07", file_name=imerg_file_name(start), begin=start,
        end=start + timedelta(minutes=29, seconds=59, milliseconds=999),
        content=make_imerg_granule().content,
    )
    outcomes = _tick_and_run(platform)
    assert len(outcomes) == 2  # the collection first, then the granule's day
    assert platform.archive().item_ids("gpm_3imerghh") == [granule.file_name[:-5]]
    report = invariant.check(CmrClient(base_url=fake_cmr.url), platform.archive(), StacApi(url=stac_api_url), gpm, hash_all=True)
    assert report.holds and report.live_in_cmr == report.stored_items == report.api_items == 1, report.metadata()


def test_a_late_indexed_granule_is_processed_once(platform, fake_cmr):
    platform.tick()
    late = _add(fake_cmr, DAY, seed=1)
    fake_cmr._unindexed.add(late.concept_id)  # published, not searchable yet
    early = _add(fake_cmr, DAY + timedelta(days=1), seed=2)
    _tick_and_run(platform)
    fake_cmr.index(late.concept_id)
    outcomes = _tick_and_run(platform)
    assert len(outcomes) == 1 and platform.tick().skip_reason is not None
    assert sorted(platform.archive().item_ids("omdoao3e")) == sorted(g.file_name[:-4] for g in (late, early))
    assert_in_step(platform)


def test_deletions_are_scoped_to_the_collection_and_withdrawn_by_runs(platform, fake_cmr):
    platform.tick()
    ours = [_add(fake_cmr, DAY + timedelta(days=n), seed=n) for n in range(3)]
    _tick_and_run(platform)
    others = [fake_cmr.add_granule(short_name="OMSO2e", version="003", file_name=f"other{n}.he5", begin=DAY, end=DAY)
              for n in range(5)]
    for other in others:  # GES DISC deletes across hundreds of collections
        fake_cmr.delete(other.concept_id)
    fake_cmr.delete(ours[1].concept_id)
    result = platform.tick()
    withdraws = [r for r in result.run_requests if r.job_name == "omdoao3e_withdraw"]
    assert len(withdraws) == 1
    granules = withdraws[0].run_config["ops"]["omdoao3e_withdraw_granules"]["config"]["granules"]
    assert [g["concept_id"] for g in granules] == [ours[1].concept_id]
    query = [r for r in fake_cmr.requests if r["path"] == "/search/deleted-granules.json"][-1]
    assert ("parent_collection_id", ours[0].collection_id) in query["params"]
    (run,) = platform.execute(result)
    assert run.success
    assert partition_of(ours[1]) not in platform.instance.get_dynamic_partitions("omdoao3e_granules")
    assert _api_ids(platform) == {ours[0].file_name[:-4], ours[2].file_name[:-4]}
    assert platform.tick().skip_reason is not None  # done: nothing requested again
    assert_in_step(platform)


def test_a_deletion_that_cannot_be_carried_out_stays_pending(platform, fake_cmr, stac_api_server):
    platform.tick()
    granule = _add(fake_cmr, DAY, seed=1)
    _tick_and_run(platform)
    fake_cmr.delete(granule.concept_id)
    with FaultProxy(stac_api_server.url) as proxy:  # the STAC API answers 503 to everything
        proxy.fail(*[ProxyFault(status=503)] * 10)
        down = Platform(platform.dataset, fake_cmr, platform.storage_url, platform.instance, platform.s3, proxy.url)
        down.harness.cursor = platform.harness.cursor
        result, (run,) = down.tick_and_execute()
        assert not run.success and "could not be withdrawn yet" in "".join(failure_messages(run))
        platform.harness.cursor = down.harness.cursor
    result, (run,) = platform.tick_and_execute()  # requested again on the next tick
    assert run.success and _api_ids(platform) == set()
    assert platform.tick().skip_reason is not None
    assert_in_step(platform)


def test_a_storage_outage_is_never_taken_for_a_missing_object(seaweedfs):
    storage = S3Storage(seaweedfs.client(), seaweedfs.bucket, "exists-check")
    storage.put_bytes(b"x", "a.json", "application/json")
    assert storage.exists("a.json") and not storage.exists("b.json")
    seaweedfs.stop()
    try:
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", endpoint_url=seaweedfs.endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
        with pytest.raises(StorageError, match="checking s3://"):
            S3Storage(client, seaweedfs.bucket, "exists-check").exists("a.json")
    finally:
        seaweedfs.start()
