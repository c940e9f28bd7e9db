"""``<dataset>_cmr_sensor``: the Dagster shell around CMR discovery.

Each tick harvests what CMR published since the cursor (``sources.cmr.harvest``), lets the plan
(``sources.plan``) decide what to register, run and withdraw, and turns that into a
``SensorResult``: partitions added in data-time order, ranged runs of consecutive partitions,
withdraw runs for CMR deletions. Nothing here decides; nothing here writes data.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cog_assets.dataset import DatasetConfig

AssetJob = Any  # what define_asset_job returns (not exported by dagster)
from cog_assets.defs.assets import DatasetAssets
from cog_assets.defs.discovery import PartitionState, deletion_requests
from cog_assets.defs.retries import MAX_ATTEMPTS, retry_requests
from cog_assets.sources.cmr.client import CmrClient, CmrError
from cog_assets.sources.cmr.harvest import Budget, HarvestCursor, harvest, recent_window
from cog_assets.sources.plan import plan_granules, ranges
from cog_assets.store.archive import Archive

REVISION_TAG = "cog_assets/cmr_revision"
GRANULES_TAG = "cog_assets/granules"


def _run_key(first: str, last: str, records: list) -> str:
    tokens = sorted(f"{r.concept_id}:{r.revision_id}" for r in records)
    digest = hashlib.sha256(",".join(tokens).encode()).hexdigest()[:16]
    return f"{first}@{digest}" if first == last else f"{first}..{last}@{digest}"


def build_cmr_sensor(
    dataset: DatasetConfig,
    built: DatasetAssets,
    chain_job: AssetJob,
    collection_job: AssetJob,
    withdraw_job: JobDefinition,
):
    """Harvests CMR within a per-tick budget and requests runs (see the module docstring)."""
    policy, strategy = dataset.sensor, built.strategy
    budget = Budget(policy.max_granules_per_tick, policy.max_seconds_per_tick, timedelta(minutes=policy.lookback_minutes))
    retry_hint = (
        f"The next attempt is the next tick, {policy.minimum_interval_seconds} s after this one "
        "(sensor.minimum_interval_seconds); to try now, use Test sensor on the sensor's page"
    )

    @sensor(
        name=f"{dataset.id}_cmr_sensor",
        minimum_interval_seconds=policy.minimum_interval_seconds,
        jobs=[chain_job, collection_job, withdraw_job],
        default_status=DefaultSensorStatus.STOPPED,
        description=(
            f"Polls CMR for {dataset.cmr.short_name} v{dataset.cmr.version} ({dataset.cmr.provider}); "
            "processes every granule CMR publishes or revises after the sensor is switched on "
            f"(and granules whose data is within {policy.auto_run_days:g} days), withdraws the ones "
            "CMR deletes" + ("." if strategy.by_day else f", and registers every granule as a partition of {dataset.partitions_name}.")
        ),
    )
    def cmr_sensor(context: SensorEvaluationContext, cmr: CmrClient, archive: Archive) -> SensorResult | SkipReason:
        now = datetime.now(timezone.utc)
        cursor = HarvestCursor.from_json(context.cursor)
        first_tick = cursor.started is None
        try:
            result = harvest(cmr, dataset.cmr, cursor, budget, with_history=not strategy.by_day, now=now)
            records = result.records
            if first_tick and strategy.by_day and policy.auto_run_days > 0:
                recent, rejected = recent_window(cmr, dataset.cmr, now - timedelta(days=policy.auto_run_days))
                known = {r.concept_id for r in records}
                records = records + [r for r in recent if r.concept_id not in known]
                result.rejected += rejected
        except CmrError as exc:
            raise CmrError(
                f"{dataset.id}: CMR search failed; the cursor is kept so nothing is skipped. {retry_hint}. Cause: {exc}"
            ) from exc
        for problem in result.rejected:
            context.log.warning(f"{dataset.id}: skipped an unusable CMR record: {problem}")

        state = PartitionState(context.instance, dataset, strategy, built.granule_chain[-1])
        started = result.cursor.started
        assert started is not None
        plan = plan_granules(
            records, strategy.key_for, state.by_concept() if not strategy.by_day and records else None,
            state.is_processed, started, now, policy.auto_run_days,
        )
        if strategy.by_day and not records:
            plan.add = []
        withdrawals, next_cursor = deletion_requests(
            context, dataset, strategy, cmr, archive, state, result.cursor, withdraw_job, budget.lookback
        )
        run_requests = _chain_requests(dataset, strategy, state, plan, chain_job)
        orders: list = []  # the partition order is read only if a run failed

        def order(key: str) -> int:
            if not orders:
                orders.append(state.order(plan.add, plan.delete))
            return orders[0](key)

        retries, retried_until, given_up = retry_requests(
            context.instance, chain_job.name, next_cursor.retried_until, state.exists, order, dataset.partitions_per_run,
        )
        run_requests += retries
        next_cursor = replace(next_cursor, retried_until=retried_until)
        if given_up:
            context.log.warning(
                f"{dataset.id}: {len(given_up)} partitions failed {MAX_ATTEMPTS} times and are not retried "
                f"automatically (their cause is on each partition's page): {given_up[:10]}"
            )
        if run_requests and context.instance.get_latest_materialization_event(built.stac_collection.key) is None:
            run_requests.insert(0, RunRequest(run_key="collection", job_name=collection_job.name))
        context.log.info(
            f"{dataset.id} ({result.phase}): {len(result.records)} new revisions in {result.pages} pages; "
            f"{plan.summary()}; {len(retries)} retry runs; {len(withdrawals)} withdraw runs; "
            f"{'caught up' if result.complete else 'more next tick'}"
        )
        requests = []
        if plan.add and not strategy.by_day:
            requests.append(strategy.partitions_def.build_add_request(plan.add))
        if plan.delete and not strategy.by_day:
            requests.append(strategy.partitions_def.build_delete_request(plan.delete))
        all_runs = run_requests + withdrawals
        if not all_runs and not requests:
            return SensorResult(skip_reason=SkipReason(f"nothing to run: {plan.summary()}"), cursor=next_cursor.to_json())
        return SensorResult(run_requests=all_runs, dynamic_partitions_requests=requests, cursor=next_cursor.to_json())

    return cmr_sensor


def _chain_requests(dataset, strategy, state: PartitionState, plan, chain_job) -> list[RunRequest]:
    """Ranged runs over consecutive partitions (at most ``partitions_per_run`` each)."""
    if not plan.runs:
        return []
    order = state.order(plan.add, plan.delete)
    requests = []
    for first, last, keys in ranges(list(plan.runs), order, dataset.partitions_per_run):
        records = [r for key in keys for r in plan.runs[key]]
        tags = {GRANULES_TAG: str(len(records))}
        if len(records) == 1:
            tags[REVISION_TAG] = str(records[0].revision_id)
        if first == last:
            requests.append(RunRequest(run_key=_run_key(first, last, records), job_name=chain_job.name, partition_key=first, tags=tags))
        else:
            tags.update({ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
            requests.append(RunRequest(run_key=_run_key(first, last, records), job_name=chain_job.name, tags=tags))
    return requests


__all__ = ["build_cmr_sensor", "REVISION_TAG", "GRANULES_TAG", "AssetKey", "DagsterRunStatus", "RunsFilter"]
