"""``<dataset>_withdraw``: the job that carries out CMR deletions, requested by the sensor.

Withdrawing a granule (STAC API, storage, tombstone; its partition for datasets partitioned by
granule, its day manifest entry for datasets partitioned by day) runs as a Dagster run, so it
is visible in the UI and retried like any run; a sensor tick only decides. Each granule is
withdrawn on its own; the run fails listing those that could not be, and the sensor requests
them again on a later tick (its deletion watermark waits for them).
"""


from dagster import Config, Failure, JobDefinition, OpExecutionContext, job, op

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.partitions import PartitionStrategy
from cog_assets.processing import revisions
from cog_assets.processing.days import day_of, remove_from_manifest
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.stac.api import StacApi, StacApiError
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError

WITHDRAW_TAG = "cog_assets/withdraw"
STAC_API_POOL = "stac_api"


class Deletion(Config):
    """One entry of CMR's deleted-granules list."""

    concept_id: str
    revision_date: str
    granule_ur: str | None = None
    parent_collection_id: str | None = None
    partition_key: str | None = None  # datasets partitioned by granule: the partition to delete


class WithdrawConfig(Config):
    granules: list[Deletion]


def withdraw_job_name(dataset: DatasetConfig) -> str:
    return f"{dataset.id}_withdraw"


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
    return f"granule {entry.concept_id} (deleted from CMR at {entry.revision_date}): STAC item withdrawn, {len(removed)} stored objects removed"


def build_withdraw_job(dataset: DatasetConfig, strategy: PartitionStrategy) -> JobDefinition:
    @op(
        name=f"{dataset.id}_withdraw_granules",
        description="Withdraw granules CMR deleted: STAC API item, stored objects, partition.",
        pool=STAC_API_POOL,
    )
    def withdraw_granules(
        context: OpExecutionContext, config: WithdrawConfig, cmr: CmrClient, archive: Archive, stac_api: StacApi
    ) -> None:
        failures = []
        relisted = set(cmr.granules(dataset.cmr, [g.concept_id for g in config.granules]))  # checked when run
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
        description=f"Withdraw {dataset.id} granules that CMR deleted (requested by {dataset.id}_cmr_sensor).",
        tags={WITHDRAW_TAG: dataset.id},
    )
    def withdraw_job() -> None:
        withdraw_granules()

    return withdraw_job
