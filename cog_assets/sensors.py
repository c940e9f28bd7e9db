"""One CMR sensor per dataset: new granules become partitions, recent ones become runs."""


from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from . import publishing
from .catalog import StaticCatalog
from .cmr import CmrClient, CmrError
from .dataset import DatasetConfig
from .discovery import Harvest, HarvestCursor, harvest
from .granules import GranuleRecord
from .stac_api import StacApi, StacApiError
from .storage import StorageError

REVISION_TAG = "cog_assets/cmr_revision"
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


def _cmr_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _withdraw_deleted(
    context: SensorEvaluationContext,
    dataset: DatasetConfig,
    cmr: CmrClient,
    catalog: StaticCatalog,
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
            removed = publishing.withdraw(catalog, stac_api, dataset, entry)
        except (StacApiError, StorageError) as exc:
            context.log.warning(
                f"{dataset.id}: granule {entry.concept_id} was deleted from CMR but could not be "
                f"withdrawn yet ({exc}); retrying next tick"
            )
            return withdrawn, entry.revision_date
        withdrawn.append(entry.concept_id)
        context.log.info(
            f"{dataset.id}: granule {entry.concept_id} deleted from CMR at {entry.revision_date}: "
            f"STAC item withdrawn, {len(removed)} stored objects removed, partition deleted"
        )
    return withdrawn, entries[-1].revision_date if entries else since


def build_cmr_sensor(
    dataset: DatasetConfig,
    partitions_def: DynamicPartitionsDefinition,
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
            f"({dataset.cmr.provider}) granules; registers each as a partition of "
            f"{partitions_def.name} and materializes those ending within "
            f"{policy.auto_run_days:g} days, and revisions of processed ones."
        ),
    )
    def cmr_sensor(
        context: SensorEvaluationContext, cmr: CmrClient, catalog: StaticCatalog, stac_api: StacApi
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
                known.append(set(instance.get_dynamic_partitions(partitions_def.name)))
            return known[0]

        def is_partition(keys: list[str]) -> set[str]:
            if len(keys) > 200:
                return set(keys) & existing()
            return {k for k in keys if instance.has_dynamic_partition(partitions_def.name, k)}

        withdrawn, deleted_since = _withdraw_deleted(
            context, dataset, cmr, catalog, stac_api, is_partition, cursor.deleted_since or tick_started
        )
        next_cursor = replace(result.cursor, deleted_since=deleted_since)
        if not result.records and not withdrawn:
            return SensorResult(
                skip_reason=SkipReason(
                    f"no new granule revisions since {cursor.watermark or 'the start'}"
                ),
                cursor=next_cursor.to_json(),
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
        if (to_run or withdrawn) and instance.get_latest_materialization_event(collection_key) is None:
            run_requests.insert(0, RunRequest(run_key="collection", asset_selection=[collection_key]))
        context.log.info(
            f"{dataset.id}: {len(result.records)} new revisions in {result.pages} pages "
            f"({len(new_keys)} new partitions, {len(to_run)} runs, {len(withdrawn)} withdrawn); "
            f"{'caught up' if result.complete else 'more next tick'}"
        )
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
