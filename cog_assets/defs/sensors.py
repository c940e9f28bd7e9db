"""``<dataset>_cmr_sensor``: the Dagster shell around CMR discovery.

Each tick harvests what CMR published since the cursor (``sources.cmr.harvest``) and the
deletions CMR lists, lets the plan (``sources.plan``) decide what to register, run and
withdraw, and hands that to ``discovery.apply`` (the shape every source's sensor has; the S3
one is ``s3_sensor``). Nothing here decides; nothing here writes data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from dagster import RunRequest, SensorEvaluationContext, SensorResult

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.assets import DatasetAssets
from cog_assets.defs.discovery import (
    GRANULES_TAG,
    REVISION_TAG,
    Decision,
    PartitionState,
    SensorJobs,
    apply,
    discovery_sensor,
    retry_runs,
)
from cog_assets.defs.partitions import PartitionStrategy
from cog_assets.defs.withdraw import in_flight, withdraw_requests
from cog_assets.processing.revisions import staged_revisions
from cog_assets.sources.cmr.client import CmrClient, CmrError
from cog_assets.sources.cmr.deletions import (
    DELETIONS_LOOKBACK_LIMIT,
    DeletedGranule,
    collection_concept_id,
    deleted_granules,
)
from cog_assets.sources.cmr.harvest import Budget, HarvestCursor, harvest, recent_window
from cog_assets.sources.plan import CLOCK_TOLERANCE, plan_deletions, plan_granules
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError

__all__ = ["build_cmr_sensor", "REVISION_TAG", "GRANULES_TAG"]
DELETIONS_CHECKED_PER_TICK = 500


def retry_hint(dataset: DatasetConfig) -> str:
    return (f"The next attempt is the next tick, {dataset.sensor.minimum_interval_seconds} s after this one "
            "(sensor.minimum_interval_seconds); to try now, use Test sensor on the sensor's page")


def build_cmr_sensor(dataset: DatasetConfig, built: DatasetAssets, jobs: SensorJobs):
    """Harvests CMR within a per-tick budget and requests runs (see the module docstring)."""
    policy, strategy, query = dataset.sensor, built.strategy, dataset.query
    budget = Budget(policy.max_granules_per_tick, policy.max_seconds_per_tick, timedelta(minutes=policy.lookback_minutes))

    @discovery_sensor(dataset, jobs, (
        f"Polls CMR for {query.short_name} v{query.version} ({query.provider}); "
        "processes every granule CMR publishes or revises after the sensor is switched on "
        f"(and granules whose data is within {policy.auto_run_days:g} days), withdraws the ones "
        "CMR deletes" + ("." if strategy.by_day else f", and registers every granule as a partition of {dataset.partitions_name}.")
    ))
    def cmr_sensor(context: SensorEvaluationContext, cmr: CmrClient, archive: Archive) -> SensorResult:
        now = datetime.now(timezone.utc)
        cursor = HarvestCursor.from_json(context.cursor)
        first_tick = cursor.started is None
        try:
            result = harvest(cmr, query, cursor, budget, with_history=not strategy.by_day, now=now)
            records = result.records
            if first_tick and strategy.by_day and policy.auto_run_days > 0:
                recent, rejected = recent_window(cmr, query, now - timedelta(days=policy.auto_run_days))
                known = {r.concept_id for r in records}
                records = records + [r for r in recent if r.concept_id not in known]
                result.rejected += rejected
        except CmrError as exc:
            raise CmrError(
                f"{dataset.id}: CMR search failed; the cursor is kept so nothing is skipped. {retry_hint(dataset)}. Cause: {exc}"
            ) from exc
        for problem in result.rejected:
            context.log.warning(f"{dataset.id}: skipped an unusable CMR record: {problem}")

        state = PartitionState(context.instance, dataset, strategy, built.granule_chain[-1])
        assert result.cursor.started is not None
        plan = plan_granules(
            records, strategy.key_for, state.by_concept() if not strategy.by_day and records else None,
            state.is_processed, result.cursor.started, now, policy.auto_run_days,
        )
        if strategy.by_day and not records:
            plan.add = []
        withdrawals, next_cursor = _deletions(context, dataset, strategy, cmr, archive, state, result.cursor, jobs, budget.lookback)
        retries, retried_until = retry_runs(context, dataset, state, plan, jobs.chain, next_cursor.retried_until)
        next_cursor = replace(next_cursor, retried_until=retried_until)
        report = (f"({result.phase}): {len(result.records)} new revisions in {result.pages} pages; "
                  f"{'caught up' if result.complete else 'more next tick'}")
        decision = Decision(plan, next_cursor.to_json(), withdrawals, report, retries)
        return apply(context, dataset, strategy, state, jobs, built.stac_collection.key, decision)

    return cmr_sensor


def _pending(dataset: DatasetConfig, strategy: PartitionStrategy, archive: Archive, state: PartitionState,
             relisted: set[str], log: Callable[[str], None]) -> Callable[[DeletedGranule], bool]:
    """Whether a deleted granule still has anything here (a partition, stored objects), and
    CMR does not list it again (a granule re-ingested after its deletion is not withdrawn)."""
    def pending(entry: DeletedGranule) -> bool:
        concept_id = entry.concept_id
        if concept_id in relisted:
            return False
        try:
            if not strategy.by_day and concept_id in state.by_concept():
                return True
            return archive.has_record(dataset.id, concept_id) or bool(staged_revisions(archive, dataset.id, concept_id))
        except StorageError as exc:  # unknown: keep it pending, never let the watermark pass it
            log(f"{dataset.id}: could not check granule {concept_id} in storage ({exc}); it stays pending")
            return True

    return pending


def _deletions(context: SensorEvaluationContext, dataset: DatasetConfig, strategy: PartitionStrategy, cmr: CmrClient,
               archive: Archive, state: PartitionState, cursor: HarvestCursor, jobs: SensorJobs,
               lookback: timedelta) -> tuple[list[RunRequest], HarvestCursor]:
    """Withdraw runs for the collection's granules CMR deleted since the cursor's watermark."""
    now = datetime.now(timezone.utc)
    since = cursor.deleted_since or cursor.started or now
    # CMR's clock is not ours and some date forms drop milliseconds: look a little earlier (what
    # was carried out is recognised and skipped); CMR refuses anything more than a year back
    oldest = now - DELETIONS_LOOKBACK_LIMIT + timedelta(hours=1)
    query_from = max(since - CLOCK_TOLERANCE, oldest)
    if since - CLOCK_TOLERANCE < oldest:
        context.log.warning(
            f"{dataset.id}: CMR lists deletions one year back at most; looking from {oldest:%Y-%m-%d} "
            "(the in_step_with_cmr check reports any item CMR no longer lists)"
        )
    try:
        collection_id = cursor.collection_id or collection_concept_id(cmr, dataset.query)
        entries = deleted_granules(cmr, dataset.query, query_from, collection_id)
        # a deletion CMR lists again was undone by a re-ingest (dates alone cannot tell: forms drop ms)
        relisted = set(cmr.granules(dataset.query, sorted({e.concept_id for e in entries[:DELETIONS_CHECKED_PER_TICK]})))
    except CmrError as exc:
        context.log.warning(f"{dataset.id}: could not list CMR deletions, retrying next tick: {exc}")
        return [], cursor
    pending = _pending(dataset, strategy, archive, state, relisted, context.log.warning)
    busy = in_flight(context.instance, jobs.withdraw.name) if entries else set()
    plan = plan_deletions(entries, pending, busy, now - lookback, DELETIONS_CHECKED_PER_TICK)
    keys = {} if strategy.by_day or not plan.withdraw else state.by_concept()
    if entries:
        context.log.info(
            f"{dataset.id}: {len(entries)} CMR deletions since {since:%Y-%m-%dT%H:%M:%SZ}: "
            f"{len(plan.withdraw)} to withdraw, {plan.waiting} being withdrawn, {plan.done} done or not ours"
        )
    requests = withdraw_requests(dataset, jobs.withdraw, plan.withdraw, keys)
    return requests, replace(cursor, collection_id=collection_id, deleted_since=plan.since)
