"""``<dataset>_withdraw``: the job that carries out deletions at the source (CMR's deleted
granules, objects gone from a bucket prefix), requested by the dataset's sensor, and the run
requests that start it (one shape for every source).

Withdrawing a granule (STAC API, storage, tombstone; its partition for datasets partitioned by
granule, its day manifest entry for datasets partitioned by day) runs as a Dagster run, so it
is visible in the UI and retried like any run; a sensor tick only decides. Each granule is
withdrawn on its own; the run fails listing those that could not be, and the sensor requests
them again on a later tick (its deletion watermark waits for them).
"""


from collections.abc import Sequence
from typing import Any

from dagster import (
    Config,
    DagsterInstance,
    DagsterRunStatus,
    Failure,
    JobDefinition,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    job,
    op,
)
from dagster_aws.s3 import S3Resource

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.partitions import PartitionStrategy
from cog_assets.processing import revisions
from cog_assets.processing.days import day_of, remove_from_manifest
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.source import source_for
from cog_assets.stac.api import StacApi, StacApiError
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError

WITHDRAW_TAG = "cog_assets/withdraw"
WITHDRAWALS_PER_RUN = 50
_IN_FLIGHT = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
STAC_API_POOL = "stac_api"


class Deletion(Config):
    """One granule deleted at the source (for CMR: an entry of its deleted-granules list; for a
    bucket: the object's URL as ``granule_ur`` and when the sensor found it gone)."""

    concept_id: str
    revision_date: str
    granule_ur: str | None = None
    parent_collection_id: str | None = None
    partition_key: str | None = None  # datasets partitioned by granule: the partition to delete


class WithdrawConfig(Config):
    granules: list[Deletion]


def withdraw_job_name(dataset: DatasetConfig) -> str:
    return f"{dataset.id}_withdraw"


def withdraw_requests(dataset: DatasetConfig, job: JobDefinition, entries: Sequence[Any],
                      keys: dict[str, str]) -> list[RunRequest]:
    """Withdraw runs for deleted granules (``DeletedGranule``-like entries: concept_id,
    revision_date, granule_ur, parent_collection_id), ``WITHDRAWALS_PER_RUN`` per run; ``keys``
    maps ids to their partitions (by granule) so the runs delete those too."""
    requests = []
    for first in range(0, len(entries), WITHDRAWALS_PER_RUN):
        batch = entries[first : first + WITHDRAWALS_PER_RUN]
        granules = [
            {"concept_id": e.concept_id, "revision_date": e.revision_date, "granule_ur": e.granule_ur,
             "parent_collection_id": e.parent_collection_id, "partition_key": keys.get(e.concept_id)}
            for e in batch
        ]
        requests.append(RunRequest(
            job_name=job.name,
            run_config={"ops": {f"{dataset.id}_withdraw_granules": {"config": {"granules": granules}}}},
            tags={WITHDRAW_TAG: dataset.id, "cog_assets/granules": str(len(batch))},
        ))
    return requests


def in_flight(instance: DagsterInstance, job_name: str) -> set[str]:
    """Granules a queued or running withdraw run is already taking care of."""
    granules: set[str] = set()
    for run in instance.get_runs(RunsFilter(job_name=job_name, statuses=_IN_FLIGHT)):
        for step in run.run_config.get("ops", {}).values():
            granules |= {g["concept_id"] for g in step.get("config", {}).get("granules", [])}
    return granules


def _withdraw_one(context: OpExecutionContext, dataset: DatasetConfig, strategy: PartitionStrategy,
                  archive: Archive, stac_api: StacApi, entry: Deletion, relisted: set[str]) -> str:
    if entry.concept_id in relisted:
        return f"granule {entry.concept_id} is listed by CMR again (re-ingested after its deletion): kept"
    live = archive.read_record(dataset.id, entry.concept_id)
    deletion = {k: v for k, v in entry.model_dump().items() if k != "partition_key"}
    if strategy.by_day and live is not None and (day := day_of(live)):
        remove_from_manifest(archive, dataset.id, day, entry.concept_id)  # first: never a dangling entry
    removed = revisions.withdraw(archive, stac_api, dataset, entry.concept_id, deletion)
    if entry.partition_key and not strategy.by_day:
        name = dataset.partitions_name
        if context.instance.has_dynamic_partition(name, entry.partition_key):
            context.instance.delete_dynamic_partition(name, entry.partition_key)
    where = "CMR" if dataset.source.kind == "cmr" else "the source"
    return (f"granule {entry.concept_id} (deleted from {where} at {entry.revision_date}): STAC item withdrawn, "
            f"{len(removed)} stored objects removed")


def build_withdraw_job(dataset: DatasetConfig, strategy: PartitionStrategy) -> JobDefinition:
    @op(
        name=f"{dataset.id}_withdraw_granules",
        description="Withdraw granules CMR deleted: STAC API item, stored objects, partition.",
        pool=STAC_API_POOL,
    )
    def withdraw_granules(
        context: OpExecutionContext, config: WithdrawConfig, cmr: CmrClient, archive: Archive, stac_api: StacApi,
        s3: S3Resource,
    ) -> None:
        failures = []
        # what the source holds again when this runs (re-ingested, re-uploaded) is not withdrawn
        relisted = set(source_for(dataset, cmr, None, s3).current([g.concept_id for g in config.granules]))
        for entry in config.granules:
            try:
                context.log.info(_withdraw_one(context, dataset, strategy, archive, stac_api, entry, relisted))
            except (StacApiError, StorageError) as exc:
                failures.append(f"granule {entry.concept_id}: {type(exc).__name__}: {exc}")
                context.log.error(failures[-1])
        if failures:
            raise Failure(
                description=f"{len(failures)} of {len(config.granules)} deleted granules could not be "
                "withdrawn yet; the sensor requests them again on its next tick:\n" + "\n".join(failures)
            )

    @job(
        name=withdraw_job_name(dataset),
        description=f"Withdraw {dataset.id} granules deleted at the source (requested by {dataset.id}_{dataset.source.kind}_sensor).",
        tags={WITHDRAW_TAG: dataset.id},
    )
    def withdraw_job() -> None:
        withdraw_granules()

    return withdraw_job
