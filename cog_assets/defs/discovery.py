"""What a discovery sensor reads from the Dagster instance and storage, once per tick, and the
withdraw runs it requests for deletions (the decisions are ``sources.plan``'s)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
)

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.partitions import PartitionStrategy
from cog_assets.defs.withdraw import WITHDRAW_TAG
from cog_assets.processing.revisions import staged_revisions
from cog_assets.sources.cmr.client import CmrClient, CmrError
from cog_assets.sources.cmr.deletions import (
    DELETIONS_LOOKBACK_LIMIT,
    DeletedGranule,
    collection_concept_id,
    deleted_granules,
)
from cog_assets.sources.cmr.harvest import HarvestCursor
from cog_assets.sources.plan import CLOCK_TOLERANCE, plan_deletions
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError

DELETIONS_CHECKED_PER_TICK = 500
WITHDRAWALS_PER_RUN = 50
_IN_FLIGHT = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


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


def _in_flight(instance: DagsterInstance, job_name: str) -> set[str]:
    """Granules a queued or running withdraw run is already taking care of."""
    concepts: set[str] = set()
    for run in instance.get_runs(RunsFilter(job_name=job_name, statuses=_IN_FLIGHT)):
        for op in run.run_config.get("ops", {}).values():
            concepts |= {g["concept_id"] for g in op.get("config", {}).get("granules", [])}
    return concepts


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


def deletion_requests(
    context: SensorEvaluationContext,
    dataset: DatasetConfig,
    strategy: PartitionStrategy,
    cmr: CmrClient,
    archive: Archive,
    state: PartitionState,
    cursor: HarvestCursor,
    withdraw_job: JobDefinition,
    lookback: timedelta,
) -> tuple[list[RunRequest], HarvestCursor]:
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
        collection_id = cursor.collection_id or collection_concept_id(cmr, dataset.cmr)
        entries = deleted_granules(cmr, dataset.cmr, query_from, collection_id)
    except CmrError as exc:
        context.log.warning(f"{dataset.id}: could not list CMR deletions, retrying next tick: {exc}")
        return [], cursor
    try:  # a deletion CMR lists again was undone by a re-ingest (dates alone cannot tell: forms drop ms)
        relisted = set(cmr.granules(dataset.cmr, sorted({e.concept_id for e in entries[:DELETIONS_CHECKED_PER_TICK]})))
    except CmrError as exc:
        context.log.warning(f"{dataset.id}: could not check CMR deletions against CMR, retrying next tick: {exc}")
        return [], cursor
    pending = _pending(dataset, strategy, archive, state, relisted, context.log.warning)
    in_flight = _in_flight(context.instance, withdraw_job.name) if entries else set()
    plan = plan_deletions(entries, pending, in_flight, now - lookback, DELETIONS_CHECKED_PER_TICK)
    keys = {} if strategy.by_day or not plan.withdraw else state.by_concept()
    requests = [
        _withdraw_request(dataset, withdraw_job, batch, keys)
        for batch in (plan.withdraw[i : i + WITHDRAWALS_PER_RUN] for i in range(0, len(plan.withdraw), WITHDRAWALS_PER_RUN))
    ]
    if entries:
        context.log.info(
            f"{dataset.id}: {len(entries)} CMR deletions since {since:%Y-%m-%dT%H:%M:%SZ}: "
            f"{len(plan.withdraw)} to withdraw, {plan.waiting} being withdrawn, {plan.done} done or not ours"
        )
    return requests, replace(cursor, collection_id=collection_id, deleted_since=plan.since)


def _withdraw_request(dataset: DatasetConfig, job: JobDefinition, batch: list[DeletedGranule], keys: dict[str, str]) -> RunRequest:
    granules = [
        {"concept_id": e.concept_id, "revision_date": e.revision_date, "granule_ur": e.granule_ur,
         "parent_collection_id": e.parent_collection_id, "partition_key": keys.get(e.concept_id)}
        for e in batch
    ]
    op_name = f"{dataset.id}_withdraw_granules"
    return RunRequest(
        job_name=job.name,
        run_config={"ops": {op_name: {"config": {"granules": granules}}}},
        tags={WITHDRAW_TAG: dataset.id, "cog_assets/granules": str(len(batch))},
    )
