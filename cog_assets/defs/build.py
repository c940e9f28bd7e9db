"""Everything one dataset file becomes in Dagster: its assets, jobs, checks and sensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetSelection,
    JobDefinition,
    SensorDefinition,
    define_asset_job,
)

from cog_assets.dataset import DatasetConfig

AssetJob = Any  # what define_asset_job returns (not exported by dagster)
from cog_assets.defs.assets import DatasetAssets, build_dataset_assets
from cog_assets.defs.catalog_sensor import CATALOG_WRITER_TAG, build_catalog_sensor
from cog_assets.defs.maintenance import (
    build_invariant_check,
    build_reconciliation_check,
    build_republish_job,
)
from cog_assets.defs.discovery import SensorJobs
from cog_assets.defs.s3_sensor import build_s3_sensor
from cog_assets.defs.sensors import build_cmr_sensor
from cog_assets.defs.withdraw import build_withdraw_job


@dataclass(frozen=True)
class DatasetDefinitions:
    assets: DatasetAssets
    chain_job: AssetJob
    collection_job: AssetJob
    withdraw_job: JobDefinition
    republish_job: JobDefinition
    checks: list[AssetChecksDefinition]
    sensor: SensorDefinition
    catalog_sensor: SensorDefinition

    @property
    def jobs(self) -> list:
        return [self.chain_job, self.collection_job, self.withdraw_job, self.republish_job]


# the discovery sensor of each source kind (README, "Add a discovery source")
SENSORS = {"cmr": build_cmr_sensor, "s3": build_s3_sensor}


def build_dataset(dataset: DatasetConfig) -> DatasetDefinitions:
    built = build_dataset_assets(dataset)
    chain_job = define_asset_job(
        f"{dataset.id}_granule_job",
        selection=AssetSelection.assets(*built.granule_chain),
        description=f"granule → cog → stac_item for {dataset.id} partitions (requested by its sensor)",
    )
    collection_job = define_asset_job(
        f"{dataset.id}_collection_job",
        selection=AssetSelection.assets(built.stac_collection.key),
        tags={CATALOG_WRITER_TAG: dataset.id},  # the run queue runs one writer at a time
    )
    withdraw_job = build_withdraw_job(dataset, built.strategy)
    return DatasetDefinitions(
        assets=built,
        chain_job=chain_job,
        collection_job=collection_job,
        withdraw_job=withdraw_job,
        republish_job=build_republish_job(dataset),
        checks=[
            build_reconciliation_check(dataset, built.stac_collection.key),
            build_invariant_check(dataset, built.stac_collection.key),
        ],
        sensor=SENSORS[dataset.source.kind](dataset, built, SensorJobs(chain_job, collection_job, withdraw_job)),
        catalog_sensor=build_catalog_sensor(
            dataset, built.granule_chain[-1], built.stac_collection.key, collection_job, withdraw_job
        ),
    )
