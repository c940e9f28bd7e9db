"""Edge cases a hostile review found in the CMR sync, each with the scenario that broke the
promise: a deletion watermark a year old, failed runs never retried, late records during a
long catch-up, a re-run whose API item kept pointing at removed objects, an older revision's
clean-up removing a newer one in flight, and a granule CMR re-ingested after deleting it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from cog_assets.defs.retries import ATTEMPT_TAG, MAX_ATTEMPTS
from cog_assets.formats import cog as cogs
from cog_assets.processing import chain, invariant
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.harvest import Budget, HarvestCursor, harvest
from cog_assets.stac.api import StacApi

from .cmr_server import FakeCmr
from .granule_files import make_omi_granule, omi_values
from .helpers import Platform, failure_messages, omi_file_name

DAY = datetime(2014, 4, 1, tzinfo=timezone.utc)


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


def _add(cmr: FakeCmr, n: int, **extra):
    day = DAY + timedelta(days=n)
    return cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=omi_file_name(day), begin=day,
                           end=day + timedelta(days=1, milliseconds=-1),
                           content=make_omi_granule(omi_values(seed=n)).content, **extra)


def _chain_runs(result) -> list:
    return [r for r in (result.run_requests or []) if r.job_name == "omdoao3e_granule_job"]


def _a_failed_run(platform: Platform, fake_cmr: FakeCmr):
    """Switched on, then a granule whose file arrives corrupted: its run fails. Returns the
    granule, its good content and the failed run."""
    platform.tick()
    bad = _add(fake_cmr, 1)
    content = fake_cmr.file_for(bad.data_path)
    fake_cmr.set_file(bad, content[:-1] + bytes([content[-1] ^ 1]))
    (failed,) = [o for o in platform.execute(platform.tick()) if o.dagster_run.job_name == "omdoao3e_granule_job"]
    assert not failed.success
    return bad, content, failed


def test_a_deletion_after_a_year_without_any_is_still_withdrawn(fake_cmr, omi, instance, local_storage_url):
    """CMR lists deletions one year back at most: a watermark older than that must not make
    every later listing fail (each tick used to send it, get a 400, and keep it)."""
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    platform.tick()
    granule = _add(fake_cmr, 0)
    assert all(o.success for o in platform.execute(platform.tick()))
    cursor = json.loads(platform.harness.cursor)
    cursor["deleted_since"] = (datetime.now(timezone.utc) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    platform.harness.cursor = json.dumps(cursor)
    fake_cmr.delete(granule.concept_id)
    result = platform.tick()
    assert [r.job_name for r in result.run_requests] == ["omdoao3e_withdraw"]
    assert all(o.success for o in platform.execute(result))
    since = HarvestCursor.from_json(platform.harness.cursor).deleted_since
    assert since is not None and since > datetime.now(timezone.utc) - timedelta(days=1)  # moved on


def test_a_run_that_failed_is_retried_by_the_next_ticks_then_given_up(fake_cmr, omi, instance, local_storage_url):
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    platform.tick()
    good, bad = _add(fake_cmr, 0), _add(fake_cmr, 1)
    content = fake_cmr.file_for(bad.data_path)
    fake_cmr.set_file(bad, content[:-1] + bytes([content[-1] ^ 1]))  # an Earthdata host serving junk
    (first,) = [o for o in platform.execute(platform.tick()) if o.dagster_run.job_name == "omdoao3e_granule_job"]
    assert not first.success
    retry = platform.tick()
    (request,) = _chain_runs(retry)
    assert request.partition_key == platform.key(bad.concept_id) and request.tags[ATTEMPT_TAG] == "2"
    for attempt in range(2, MAX_ATTEMPTS + 1):  # it keeps failing: retried until MAX_ATTEMPTS
        (outcome,) = platform.execute(retry)
        assert not outcome.success
        retry = platform.tick()
    assert _chain_runs(retry) == []  # given up: the cause stays on the partition's page
    fake_cmr.set_file(bad, content)  # fixed at the source; a person re-runs the partition
    assert platform.run(bad.concept_id).success
    assert platform.archive().item_ids("omdoao3e") == sorted(g.file_name[:-4] for g in (good, bad))


def test_the_check_reports_a_published_granule_that_was_never_processed(fake_cmr, omi, instance, local_storage_url):
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    _add(fake_cmr, 0, revision_date=datetime.now(timezone.utc) - timedelta(hours=3))
    cmr, archive, api = CmrClient(base_url=fake_cmr.url), platform.archive(), StacApi()
    history = invariant.check(cmr, archive, api, omi, published_since=datetime.now(timezone.utc))
    assert history.holds and history.awaiting_processing == 1  # published before: history
    missed = invariant.check(cmr, archive, api, omi, published_since=datetime.now(timezone.utc) - timedelta(days=1))
    assert not missed.holds
    assert list(missed.violations) == ["granules published since the sensor was switched on, not processed"]


def test_a_late_record_is_found_during_a_catch_up_longer_than_the_lookback(fake_cmr, omi):
    """A reprocessing campaign takes many budget-limited ticks; a record of it indexed 40
    minutes late is read by a later tick's overlap, not skipped for ever."""
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    fake_cmr.add_many([
        dict(short_name="OMDOAO3e", version="003", file_name=f"c{n}.he5", begin=DAY, end=DAY,
             revision_date=t0 + timedelta(milliseconds=100 * n))
        for n in range(400)
    ])
    late = fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name="late.he5", begin=DAY, end=DAY,
                                revision_date=t0 + timedelta(seconds=1), indexed=False)
    cmr = CmrClient(base_url=fake_cmr.url, page_size=10)
    budget = Budget(granules=20, seconds=60, lookback=timedelta(minutes=60))
    cursor, seen = HarvestCursor(), set()
    for tick in range(40):  # a tick every 15 minutes of the sensor's clock
        now = t0 + timedelta(minutes=15 * tick)
        if tick == 3:
            fake_cmr.index(late.concept_id)  # 45 minutes after its revision date
        result = harvest(cmr, omi.cmr, cursor, budget, with_history=False, now=now)
        seen |= {r.concept_id for r in result.records}
        cursor = result.cursor
        if result.complete and tick > 3:
            break
    assert late.concept_id in seen and len(seen) == 401


def test_a_rerun_that_changes_bytes_keeps_the_api_item_pointing_at_live_objects(
    fake_cmr, omi, instance, s3_prefix_url, seaweedfs, stac_api_url, monkeypatch
):
    """same_revision: skip must not leave the API item on a COG the re-run's clean-up removes."""
    platform = Platform(omi, fake_cmr, s3_prefix_url, instance, seaweedfs, stac_api_url)
    granule = _add(fake_cmr, 0)
    assert platform.run(granule.concept_id).success
    original = cogs.cog_options

    def other_bytes(threads: int = 1) -> dict:  # what a GDAL or reader upgrade does to the COG's bytes
        return {**original(threads), "LEVEL": 1}

    monkeypatch.setattr(cogs, "cog_options", other_bytes)
    assert platform.run(granule.concept_id).success
    assert platform.metadata(granule.concept_id)["stac_api"] == "replaced"
    item = httpx.get(f"{stac_api_url}/collections/omdoao3e/items/{granule.file_name[:-4]}", timeout=30).json()
    key = platform.archive().storage.key_of(item["assets"]["cog_default"]["href"])
    assert platform.archive().storage.exists(key)
    report = invariant.check(CmrClient(base_url=fake_cmr.url), platform.archive(), StacApi(url=stac_api_url), omi, hash_all=True)
    assert report.holds, report.summary()


def test_an_older_revision_committing_late_leaves_a_newer_one_in_flight(fake_cmr, omi, instance, local_storage_url, tmp_path):
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    granule = _add(fake_cmr, 0)
    r2 = fake_cmr.revise(granule.concept_id, content=make_omi_granule(omi_values(seed=2)).content,
                         file_name=granule.file_name.replace("t014459", "t020000"))  # reprocessed: renamed
    svc = chain.Services(omi, *(platform.resources()[k] for k in ("cmr", "earthdata", "archive", "stac_api")))
    old = CmrClient(base_url=fake_cmr.url).granule(omi.cmr, granule.concept_id)  # run A read r2
    r3 = fake_cmr.revise(granule.concept_id, content=make_omi_granule(omi_values(seed=3)).content,
                         file_name=granule.file_name.replace("t014459", "t030000"))
    current = CmrClient(base_url=fake_cmr.url).granule(omi.cmr, granule.concept_id)
    assert chain.process(svc, granule.concept_id, current, {"granule"}, tmp_path).error is None  # run B staging r3
    assert chain.process(svc, granule.concept_id, old, set(chain.STEPS), tmp_path).error is None  # run A commits r2
    assert r3.revision_id in revisions_staged(platform, granule.concept_id)  # B's revision survived A's clean-up
    assert chain.process(svc, granule.concept_id, current, set(chain.STEPS), tmp_path).error is None  # B commits
    assert set(revisions_staged(platform, granule.concept_id)) == {r3.revision_id} and r2.revision_id == 2


def revisions_staged(platform: Platform, concept_id: str) -> list[int]:
    from cog_assets.processing.revisions import staged_revisions

    return sorted(staged_revisions(platform.archive(), "omdoao3e", concept_id))


def test_a_granule_cmr_re_ingests_after_deleting_it_stays(fake_cmr, omi, instance, local_storage_url):
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    platform.tick()
    granule = _add(fake_cmr, 0)
    assert all(o.success for o in platform.execute(platform.tick()))
    fake_cmr.delete(granule.concept_id)
    back = _add(fake_cmr, 0, concept_id=granule.concept_id)  # re-ingested: a later revision
    assert back.revision_id == granule.revision_id + 2
    for outcome in platform.execute(platform.tick()):  # its run and the deletion's withdraw run
        assert outcome.success, failure_messages(outcome)
    assert platform.archive().item_ids("omdoao3e") == [back.file_name[:-4]]
    assert platform.key(back.concept_id) in instance.get_dynamic_partitions("omdoao3e_granules")
    assert not _chain_runs(platform.tick())


def test_a_failed_granule_whose_revision_moves_its_date_is_run_once_at_its_new_key(fake_cmr, omi, instance,
                                                                                  local_storage_url):
    """A run fails, then CMR revises the granule to another day before the next tick: the tick
    moves the partition and runs the new key once; it neither crashes retrying the deleted key
    (which would stop the sensor for good) nor runs the granule twice."""
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    bad, content, failed = _a_failed_run(platform, fake_cmr)
    old_key = platform.key(bad.concept_id)
    moved = DAY + timedelta(days=5)
    fake_cmr.revise(bad.concept_id, content=content, begin=moved, end=moved + timedelta(days=1, milliseconds=-1))
    result = platform.tick()
    new_key = f"{moved:%Y-%m-%d}_{bad.concept_id}"
    assert [r.partition_key for r in _chain_runs(result)] == [new_key]
    assert all(o.success for o in platform.execute(result))
    assert old_key not in instance.get_dynamic_partitions("omdoao3e_granules")


def test_a_failed_partition_with_a_new_revision_in_the_same_tick_gets_one_run(fake_cmr, omi, instance,
                                                                             local_storage_url):
    """A retry and a run of the new revision at once would work on the same keys (and one's
    roll-back could remove what the other wrote): the new revision's run is the retry."""
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    bad, content, failed = _a_failed_run(platform, fake_cmr)
    fake_cmr.revise(bad.concept_id, content=content)
    runs = _chain_runs(platform.tick())
    assert [r.partition_key for r in runs] == [platform.key(bad.concept_id)]


def test_a_failure_stored_after_a_later_one_is_still_retried_once(fake_cmr, omi, instance, local_storage_url):
    """Run workers stamp a failure when it happens and store it later: a tick can see run B's
    failure (later stamp) before run A's. The next tick re-reads an overlap behind its
    watermark, so A is retried, and only once."""
    platform = Platform(omi, fake_cmr, local_storage_url, instance)
    bad, content, failed = _a_failed_run(platform, fake_cmr)
    stamped = instance.get_run_record_by_id(failed.run_id).update_timestamp.timestamp()
    cursor = HarvestCursor.from_json(platform.harness.cursor)
    platform.harness.cursor = replace(cursor, retried_until=stamped + 2.0).to_json()  # B, 2 s later, seen first
    result = platform.tick()
    (retry,) = _chain_runs(result)
    assert retry.partition_key == platform.key(bad.concept_id) and retry.tags[ATTEMPT_TAG] == "2"
    fake_cmr.set_file(bad, content)  # the outage is over: the retry succeeds
    assert all(o.success for o in platform.execute(result))
    assert _chain_runs(platform.tick()) == []  # the overlap finds A again: not retried twice
