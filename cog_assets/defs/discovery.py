"""The shape every discovery sensor has: read the source, plan (``sources.plan``), apply.

A source's sensor reads what its source published since its cursor and what the instance
already has (:class:`PartitionState`, each read at most once per tick), lets the pure plan
decide what to register, run and withdraw, and hands the decision to :func:`apply`, which
turns it into one ``SensorResult``: partitions added in data-time order (and moved ones
deleted), the collection published before the first items, ranged runs of consecutive
partitions, withdraw runs. Sources differ only in how they read; nothing here knows which
source it serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
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
from cog_assets.defs.partitions import PartitionStrategy
from cog_assets.defs.retries import MAX_ATTEMPTS, retry_requests
from cog_assets.sources.plan import Plan, ranges

AssetJob = Any  # what define_asset_job returns (not exported by dagster)
REVISION_TAG = "cog_assets/cmr_revision"  # the revision a single-granule run was requested for
GRANULES_TAG = "cog_assets/granules"


class PartitionState:
    """The dataset's partitions as this tick sees them, each read at most once (at 400,000
    partitions reading every key costs seconds)."""

    def __init__(self, instance: DagsterInstance, dataset: DatasetConfig, strategy: PartitionStrategy, item_key: AssetKey) -> None:
        self.instance, self.dataset, self.strategy, self.item_key = instance, dataset, strategy, item_key
        self._keys: list[str] | None = None
        self._by_concept: dict[str, str] | None = None
        self._processed: set[str] | None = None

    def keys(self) -> list[str]:
        """Registered keys in registration order (by granule only)."""
        if self._keys is None:
            self._keys = list(self.instance.get_dynamic_partitions(self.dataset.partitions_name))
        return self._keys

    def by_concept(self) -> dict[str, str]:
        """Granule id → its partition key."""
        if self._by_concept is None:
            self._by_concept = {self.strategy.concept_of(key): key for key in self.keys()}
        return self._by_concept

    def exists(self, key: str) -> bool:
        """Whether the partition is (still) there."""
        if self.strategy.by_day:
            return self.strategy.partitions_def.has_partition_key(key)
        return key in self.by_concept().values() if self._by_concept is not None else key in set(self.keys())

    def is_processed(self, key: str) -> bool:
        if self._processed is None:
            self._processed = set(self.instance.get_materialized_partitions(self.item_key))
        return key in self._processed

    def order(self, added: list[str], deleted: list[str]) -> Callable[[str], int]:
        """Position of each partition in the UI's order, after this tick's changes."""
        if self.strategy.by_day:
            return lambda day: datetime.strptime(day, "%Y-%m-%d").toordinal()
        gone = set(deleted)
        positions = {key: n for n, key in enumerate([k for k in self.keys() if k not in gone] + added)}
        return positions.__getitem__


@dataclass(frozen=True)
class SensorJobs:
    chain: AssetJob
    collection: AssetJob
    withdraw: JobDefinition

    @property
    def all(self) -> list:
        return [self.chain, self.collection, self.withdraw]


def sensor_name(dataset: DatasetConfig) -> str:
    """``<dataset>_cmr_sensor``, ``<dataset>_s3_sensor``: the discovery sensor of the dataset's source."""
    return f"{dataset.id}_{dataset.source.kind}_sensor"


def discovery_sensor(dataset: DatasetConfig, jobs: SensorJobs, description: str) -> Callable:
    """The decorator every source's sensor is made with: its name, pace and jobs; off until
    someone switches it on (its first tick decides what counts as history)."""
    return sensor(name=sensor_name(dataset), minimum_interval_seconds=dataset.sensor.minimum_interval_seconds,
                  jobs=jobs.all, default_status=DefaultSensorStatus.STOPPED, description=description)


@dataclass
class Decision:
    """A tick's decision, whatever the source: the plan, the withdraw runs, the next cursor,
    and what the source reported (shown in the tick's log and skip reason)."""

    plan: Plan
    cursor: str
    withdrawals: list[RunRequest] = field(default_factory=list)
    report: str = ""
    retries: list[RunRequest] = field(default_factory=list)  # failed partitions asked again


def retry_runs(context: SensorEvaluationContext, dataset: DatasetConfig, state: PartitionState, plan: Plan,
               job: AssetJob, retried_until: float | None) -> tuple[list[RunRequest], float | None]:
    """Runs for the failed partitions of chain runs that ended since ``retried_until``
    (``defs.retries``), and where the next tick looks from; what is given up is logged."""
    orders: list = []  # the partition order is read only if a run failed

    def order(key: str) -> int:
        if not orders:
            orders.append(state.order(plan.add, plan.delete))
        return orders[0](key)

    def retryable(key: str) -> bool:  # not a key this tick moves away, nor one it runs anyway
        return key not in plan.runs and key not in plan.delete and state.exists(key)

    retries, retried_until, given_up = retry_requests(
        context.instance, job.name, retried_until, retryable, order, dataset.partitions_per_run
    )
    if given_up:
        context.log.warning(
            f"{dataset.id}: {len(given_up)} partitions failed {MAX_ATTEMPTS} times and are not retried "
            f"automatically (their cause is on each partition's page): {given_up[:10]}"
        )
    return retries, retried_until


def _run_key(first: str, last: str, records: list) -> str:
    tokens = sorted(f"{r.concept_id}:{r.revision_id}" for r in records)
    digest = hashlib.sha256(",".join(tokens).encode()).hexdigest()[:16]
    return f"{first}@{digest}" if first == last else f"{first}..{last}@{digest}"


def chain_requests(dataset: DatasetConfig, state: PartitionState, plan: Plan, job: AssetJob) -> list[RunRequest]:
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
            requests.append(RunRequest(run_key=_run_key(first, last, records), job_name=job.name, partition_key=first, tags=tags))
        else:
            tags.update({ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
            requests.append(RunRequest(run_key=_run_key(first, last, records), job_name=job.name, tags=tags))
    return requests


def apply(context: SensorEvaluationContext, dataset: DatasetConfig, strategy: PartitionStrategy, state: PartitionState,
          jobs: SensorJobs, collection_key: AssetKey, decision: Decision) -> SensorResult:
    """The decision as Dagster's answer to the tick (the only place a sensor builds one)."""
    plan = decision.plan
    runs = chain_requests(dataset, state, plan, jobs.chain) + decision.retries
    if runs and context.instance.get_latest_materialization_event(collection_key) is None:
        runs.insert(0, RunRequest(run_key="collection", job_name=jobs.collection.name))
    context.log.info(f"{dataset.id} {decision.report}; {plan.summary()}; "
                     f"{len(decision.retries)} retry runs; {len(decision.withdrawals)} withdraw runs")
    requests = []
    if plan.add and not strategy.by_day:
        requests.append(strategy.partitions_def.build_add_request(plan.add))
    if plan.delete and not strategy.by_day:
        requests.append(strategy.partitions_def.build_delete_request(plan.delete))
    all_runs = runs + decision.withdrawals
    if not all_runs and not requests:
        reason = f"nothing to run: {decision.report}; {plan.summary()}" if decision.report else f"nothing to run: {plan.summary()}"
        return SensorResult(skip_reason=SkipReason(reason), cursor=decision.cursor)
    return SensorResult(run_requests=all_runs, dynamic_partitions_requests=requests, cursor=decision.cursor)
