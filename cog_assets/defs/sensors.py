"""One CMR sensor per dataset: new granules become partitions, recent ones become runs.

For a dataset partitioned by day, nothing is registered (the days exist by the calendar): the
sensor requests one run per day that has new or revised granules to process.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    PartitionsDefinition,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.partitions import day_of
from cog_assets.sources.cmr.client import CmrClient, CmrError
from cog_assets.sources.cmr.harvest import Harvest, HarvestCursor, harvest
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.stac import publishing
from cog_assets.stac.api import StacApi, StacApiError
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError

REVISION_TAG = "cog_assets/cmr_revision"
GRANULES_TAG = "cog_assets/granule_revisions"
MAX_WITHDRAWALS_PER_TICK = 500


def _is_recent(record: GranuleRecord, now: datetime, days: float) -> bool:
    when = record.end or record.begin
    return when is not None and when >= now - timedelta(days=days)


def plan_tick(
    dataset: DatasetConfig,
    result: Harvest,
    existing: set[str],
    processed: set[str] | None,
    now: datetime,
) -> tuple[list[str], list[GranuleRecord]]:
    """Which partitions to add and which granules to run.

    New granules are always registered, and run when recent. A revised granule (already a
    partition) is rerun when recent or when it was processed before, so outputs follow CMR.
    ``processed`` is only consulted for revisions; None means "not fetched" (no revisions).
    """
    new_keys: list[str] = []
    to_run: list[GranuleRecord] = []
    for record in result.records:
        recent = _is_recent(record, now, dataset.sensor.auto_run_days)
        if record.concept_id not in existing:
            new_keys.append(record.concept_id)
            if recent:
                to_run.append(record)
        elif recent or (processed is not None and record.concept_id in processed):
            to_run.append(record)
    return new_keys, to_run


def plan_days(
    dataset: DatasetConfig,
    records: list[GranuleRecord],
    materialized_days: set[str],
    is_day: Callable[[str], bool],
    now: datetime,
) -> dict[str, list[GranuleRecord]]:
    """Which days to run, with the new revisions that make each one due.

    A day runs when one of its granules is recent, or when the day was materialized before
    (a late or revised granule keeps it in step with CMR; its current granules are skipped).
    """
    due: dict[str, list[GranuleRecord]] = {}
    for record in records:
        day = day_of(record)
        if day is None:
            continue
        if _is_recent(record, now, dataset.sensor.auto_run_days) or day in materialized_days:
            due.setdefault(day, []).append(record)
    return {day: due[day] for day in sorted(due) if is_day(day)}


def _day_run_key(day: str, records: list[GranuleRecord]) -> str:
    tokens = sorted(f"{r.concept_id}:{r.revision_id}" for r in records)
    return f"{day}@{hashlib.sha256(','.join(tokens).encode()).hexdigest()[:16]}"


def _cmr_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _withdraw_deleted(
    context: SensorEvaluationContext,
    dataset: DatasetConfig,
    cmr: CmrClient,
    archive: Archive,
    stac_api: StacApi,
    is_partition: Callable[[list[str]], set[str]],
    since: str,
) -> tuple[list[str], str]:
    """Withdraw this dataset's granules CMR deleted since ``since``.

    Returns the withdrawn partition keys and where to look from next tick. On any failure the
    watermark stays put (withdrawing twice is harmless), and discovery carries on.
    """
    try:
        deleted = cmr.deleted_granules(dataset.cmr, since)
    except CmrError as exc:
        context.log.warning(f"{dataset.id}: could not list CMR deletions, retrying next tick: {exc}")
        return [], since
    withdrawn: list[str] = []
    entries = sorted(deleted, key=lambda e: e.revision_date)
    ours = is_partition([e.concept_id for e in entries]) if entries else set()
    for entry in entries:
        if entry.concept_id not in ours or entry.concept_id in withdrawn:
            continue
        if len(withdrawn) == MAX_WITHDRAWALS_PER_TICK:
            return withdrawn, entry.revision_date  # the rest next tick (the query is inclusive)
        try:
            removed = publishing.withdraw(archive, stac_api, dataset, entry)
        except (StacApiError, StorageError) as exc:
            context.log.warning(
                f"{dataset.id}: granule {entry.concept_id} was deleted from CMR but could not be "
                f"withdrawn yet ({exc}); retrying next tick"
            )
            return withdrawn, entry.revision_date
        withdrawn.append(entry.concept_id)
        context.log.info(
            f"{dataset.id}: granule {entry.concept_id} deleted from CMR at {entry.revision_date}: "
            f"STAC item withdrawn, {len(removed)} stored objects removed"
            + ("" if dataset.by_day else ", partition deleted")
        )
    return withdrawn, entries[-1].revision_date if entries else since


def build_cmr_sensor(
    dataset: DatasetConfig,
    partitions_def: PartitionsDefinition,
    granule_chain: Sequence[AssetKey],
    collection_key: AssetKey,
):
    """``<dataset>_cmr_sensor``: harvests CMR within a per-tick budget and requests runs."""
    policy = dataset.sensor

    @sensor(
        name=f"{dataset.id}_cmr_sensor",
        minimum_interval_seconds=policy.minimum_interval_seconds,
        asset_selection=[*granule_chain, collection_key],
        default_status=DefaultSensorStatus.STOPPED,
        description=(
            f"Polls CMR for {dataset.cmr.short_name} v{dataset.cmr.version} "
            f"({dataset.cmr.provider}) granules; "
            + (
                f"runs each day with granules ending within {policy.auto_run_days:g} days, and "
                "days already materialized that get new or revised granules."
                if dataset.by_day
                else f"registers each as a partition of {dataset.partitions_name} and "
                f"materializes those ending within {policy.auto_run_days:g} days, and "
                "revisions of processed ones."
            )
        ),
    )
    def cmr_sensor(
        context: SensorEvaluationContext, cmr: CmrClient, archive: Archive, stac_api: StacApi
    ) -> SensorResult | SkipReason:
        cursor = HarvestCursor.from_json(context.cursor)
        tick_started = _cmr_time(datetime.now(timezone.utc))
        try:
            result = harvest(
                cmr, dataset.cmr, cursor, policy.max_granules_per_tick, policy.max_seconds_per_tick
            )
        except CmrError as exc:
            raise CmrError(
                f"{dataset.id}: CMR search failed, cursor kept at {cursor.watermark or 'start'} "
                f"so nothing is skipped; the next tick retries. Cause: {exc}"
            ) from exc
        for problem in result.rejected:
            context.log.warning(f"{dataset.id}: skipped an unusable CMR record: {problem}")

        instance = context.instance
        known: list[set[str]] = []

        def existing() -> set[str]:
            """All partition keys, fetched once per tick and only when needed (400,000 take s)."""
            if not known:
                known.append(set(instance.get_dynamic_partitions(dataset.partitions_name)))
            return known[0]

        def is_partition(keys: list[str]) -> set[str]:
            if dataset.by_day:  # ours if we staged it
                return {k for k in keys if archive.has_record(dataset.id, k)}
            if len(keys) > 200:
                return set(keys) & existing()
            return {k for k in keys if instance.has_dynamic_partition(dataset.partitions_name, k)}

        withdrawn, deleted_since = _withdraw_deleted(
            context, dataset, cmr, archive, stac_api, is_partition, cursor.deleted_since or tick_started
        )
        next_cursor = replace(result.cursor, deleted_since=deleted_since)
        if not result.records and not withdrawn:
            return SensorResult(
                skip_reason=SkipReason(
                    f"no new granule revisions since {cursor.watermark or 'the start'}"
                ),
                cursor=next_cursor.to_json(),
            )

        def collection_first() -> list[RunRequest]:
            """The collection is published before any item."""
            if instance.get_latest_materialization_event(collection_key) is None:
                return [RunRequest(run_key="collection", asset_selection=[collection_key])]
            return []

        if dataset.by_day:
            materialized = set(instance.get_materialized_partitions(granule_chain[-1])) if result.records else set()
            due = plan_days(dataset, result.records, materialized, partitions_def.has_partition_key, datetime.now(timezone.utc))
            context.log.info(
                f"{dataset.id}: {len(result.records)} new revisions in {result.pages} pages "
                f"({len(due)} days to run, {len(withdrawn)} withdrawn); "
                f"{'caught up' if result.complete else 'more next tick'}"
            )
            day_runs = [
                RunRequest(
                    run_key=_day_run_key(day, records),
                    partition_key=day,
                    asset_selection=list(granule_chain),
                    tags={GRANULES_TAG: str(len(records))},
                )
                for day, records in due.items()
            ]
            return SensorResult(
                run_requests=(collection_first() + day_runs) if day_runs else [], cursor=next_cursor.to_json()
            )

        partitions = existing() if result.records else set()
        has_revisions = any(r.concept_id in partitions for r in result.records)
        processed = (
            set(instance.get_materialized_partitions(granule_chain[-1])) if has_revisions else None
        )
        new_keys, to_run = plan_tick(
            dataset, result, partitions - set(withdrawn), processed, datetime.now(timezone.utc)
        )
        run_requests = [
            RunRequest(
                run_key=f"{record.concept_id}@{record.revision_id}",
                partition_key=record.concept_id,
                asset_selection=list(granule_chain),
                tags={REVISION_TAG: str(record.revision_id)},
            )
            for record in to_run
        ]
        if to_run or withdrawn:
            run_requests = collection_first() + run_requests
        context.log.info(
            f"{dataset.id}: {len(result.records)} new revisions in {result.pages} pages "
            f"({len(new_keys)} new partitions, {len(to_run)} runs, {len(withdrawn)} withdrawn); "
            f"{'caught up' if result.complete else 'more next tick'}"
        )
        assert isinstance(partitions_def, DynamicPartitionsDefinition)
        requests = []
        if new_keys:
            requests.append(partitions_def.build_add_request(new_keys))
        if withdrawn:
            requests.append(partitions_def.build_delete_request(withdrawn))
        return SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=requests,
            cursor=next_cursor.to_json(),
        )

    return cmr_sensor
