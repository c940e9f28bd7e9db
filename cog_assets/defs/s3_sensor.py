"""``<dataset>_s3_sensor``: the Dagster shell around discovery in a bucket prefix.

Each tick lists the prefix within its budget (``sources.s3.discover``), drops overwrites whose
ETag is the one already processed, lets the plan (``sources.plan``, the same as CMR's) decide
what to register and run, turns gone objects into withdraw runs, and hands that to
``discovery.apply``. What the listing skipped (names not matching the pattern, refused names)
is counted in the tick's log and skip reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from dagster import RunRequest, SensorEvaluationContext, SensorResult
from dagster_aws.s3 import S3Resource

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.assets import DatasetAssets
from cog_assets.defs.discovery import Decision, PartitionState, SensorJobs, apply, discovery_sensor, retry_runs
from cog_assets.defs.sensors import retry_hint
from cog_assets.defs.withdraw import in_flight, withdraw_requests
from cog_assets.sources.cmr.deletions import DeletedGranule
from cog_assets.sources.cmr.records import GranuleRecord, cmr_time
from cog_assets.sources.plan import plan_granules, why_run
from cog_assets.sources.s3.bucket import PAGE_SIZE, SourceError, open_bucket
from cog_assets.sources.s3.config import S3Source
from cog_assets.sources.s3.discover import ListingBudget, ListingCursor, list_tick, utc_now
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError

SHOWN_REFUSALS = 20


def build_s3_sensor(dataset: DatasetConfig, built: DatasetAssets, jobs: SensorJobs):
    """Lists the dataset's prefix within a per-tick budget and requests runs (module docstring)."""
    policy, strategy = dataset.sensor, built.strategy
    source = dataset.source
    assert isinstance(source, S3Source)
    budget = ListingBudget(policy.max_granules_per_tick, policy.max_seconds_per_tick,
                           timedelta(minutes=policy.lookback_minutes), timedelta(minutes=policy.relist_minutes),
                           page_size=min(PAGE_SIZE, policy.max_granules_per_tick))  # a tick never lists past its budget

    @discovery_sensor(dataset, jobs, (
        f"Lists {source.url} for objects whose names match {source.pattern!r}; registers each as a "
        f"partition of {dataset.partitions_name}, processes the ones new or overwritten after the sensor "
        f"is switched on (and those whose data is within {policy.auto_run_days:g} days), withdraws the "
        f"ones deleted. A full listing at most every {policy.relist_minutes:g} minutes, new names in between."
    ))
    def s3_sensor(context: SensorEvaluationContext, s3: S3Resource, archive: Archive) -> SensorResult:
        now = utc_now()
        cursor = ListingCursor.from_json(context.cursor)
        state = PartitionState(context.instance, dataset, strategy, built.granule_chain[-1])
        started = cursor.started or now

        def eligible(record: GranuleRecord, key: str | None) -> bool:
            processed = key is not None and state.is_processed(key)
            return why_run(record, started, now, policy.auto_run_days, processed) is not None

        try:
            bucket = open_bucket(source, s3.get_client() if source.scheme == "s3" else None)
            listing = list_tick(bucket, source, cursor, state.by_concept, eligible, budget, now)
        except SourceError as exc:
            raise SourceError(f"{dataset.id}: listing failed; the cursor is kept so nothing is skipped. "
                              f"{retry_hint(dataset)}. Cause: {exc}") from exc
        for refused in listing.refused[:SHOWN_REFUSALS]:
            context.log.warning(f"{dataset.id}: refused {refused}")
        records, unchanged = _revisions(archive, dataset, state, listing.records)
        assert listing.cursor.started is not None
        plan = plan_granules(records, strategy.key_for, state.by_concept() if records else {},
                             state.is_processed, listing.cursor.started, now, policy.auto_run_days, listing.published)
        withdrawals = _withdrawals(context, dataset, state, jobs, listing.deleted, now)
        report = listing.summary() + (f"; {unchanged} re-uploaded with the same ETag (not a revision)" if unchanged else "")
        retries, retried_until = retry_runs(context, dataset, state, plan, jobs.chain, listing.cursor.retried_until)
        cursor = replace(listing.cursor, retried_until=retried_until)
        decision = Decision(plan, cursor.to_json(), withdrawals, report, retries)
        return apply(context, dataset, strategy, state, jobs, built.stac_collection.key, decision)

    return s3_sensor


def _revisions(archive: Archive, dataset: DatasetConfig, state: PartitionState,
               records: list[GranuleRecord]) -> tuple[list[GranuleRecord], int]:
    """The records that are new, or a new ETag of a processed granule: a re-upload of the same
    bytes changes LastModified but is not a revision (one storage read per such object)."""
    kept, unchanged = [], 0
    for record in records:
        key = state.by_concept().get(record.concept_id)
        if key is not None and state.is_processed(key):
            try:
                live = archive.read_record(dataset.id, record.concept_id)
            except StorageError:
                live = None  # unknown: process it again rather than miss a revision
            if live is not None and live.etag == record.etag:
                unchanged += 1
                continue
        kept.append(record)
    return kept, unchanged


def _withdrawals(context: SensorEvaluationContext, dataset: DatasetConfig, state: PartitionState,
                 jobs: SensorJobs, gone: list[str], now: datetime) -> list[RunRequest]:
    """Withdraw runs for registered granules whose object is gone (once: not while a withdraw
    run for them is queued or running; a failed one is found again by the next listing)."""
    if not gone:
        return []
    busy = in_flight(context.instance, jobs.withdraw.name)
    entries = [DeletedGranule(stem, cmr_time(now)) for stem in gone if stem not in busy]
    if len(entries) < len(gone):
        context.log.info(f"{dataset.id}: {len(gone) - len(entries)} deleted objects are being withdrawn already")
    return withdraw_requests(dataset, jobs.withdraw, entries, state.by_concept())
