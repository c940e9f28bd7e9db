"""What a person sees of a run in the Dagster UI: the cause on the failed partition, messages
written once with correct counts, and a materialize from any of the three asset pages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster import AssetKey

from .granule_files import make_omi_granule, omi_values
from .helpers import Platform, add_omi_granule, failure_messages

DAY = datetime(2013, 3, 1, tzinfo=timezone.utc)


def _two_granules_one_bad(fake_cmr):
    good, bad = (add_omi_granule(fake_cmr, make_omi_granule(omi_values(seed=n)).content, DAY + timedelta(days=n)) for n in range(2))
    fake_cmr.set_file(bad, b"not the granule CMR describes")
    return good, bad


def test_a_failed_partition_carries_its_cause_and_the_message_counts_right(fake_cmr, datasets, instance, local_storage_url):
    good, bad = _two_granules_one_bad(fake_cmr)
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)
    result = platform.run_range(good.concept_id, bad.concept_id)
    assert not result.success
    (message,) = failure_messages(result)
    assert "1 of 2 granules failed, 1 materialized" in message
    line = next(line for line in message.splitlines() if bad.concept_id in line)
    assert line.count(f"granule {bad.concept_id}") == 1  # said once, not once per wrapping cause
    for step in ("granule", "cog", "stac_item"):
        records = instance.fetch_observations(AssetKey(["omdoao3e", step]), limit=10).records
        (observation,) = [r.asset_observation for r in records if r.partition_key == platform.key(bad.concept_id)]
        assert observation.description.startswith("failed: ") and "received 29 bytes" in observation.description
        assert observation.metadata["run"].value == result.run_id
    assert not [r for r in instance.fetch_observations(AssetKey(["omdoao3e", "cog"]), limit=10).records
                if r.partition_key == platform.key(good.concept_id)]


def test_materialize_from_the_stac_item_page_runs_the_steps_it_needs(fake_cmr, datasets, instance, local_storage_url):
    """The README's backfill path: stac_item alone, on granules not staged yet."""
    good, _ = _two_granules_one_bad(fake_cmr)
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)
    item_only = [AssetKey(["omdoao3e", "stac_item"])]
    result = platform.run(good.concept_id, selection=item_only)
    assert result.success, failure_messages(result)
    done = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert done == {"granule", "cog", "stac_item"}  # all three materialized in the same run
    downloads: list[str] = []
    fake_cmr.on_download = downloads.append
    again = platform.run(good.concept_id, selection=item_only)  # staged now: just that step
    assert again.success and downloads == []
    assert {e.asset_key.path[-1] for e in again.get_asset_materialization_events()} == {"stac_item"}
    cog_only = platform.run(good.concept_id, selection=[AssetKey(["omdoao3e", "cog"])])
    assert {e.asset_key.path[-1] for e in cog_only.get_asset_materialization_events()} == {"cog"} and downloads == []
