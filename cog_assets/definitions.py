"""The code location (``cog_assets.definitions:defs``): every dataset file under ``datasets/``
becomes assets (with its AOI statistics), a sensor, checks and jobs; one ``aoi_sensor`` keeps
the AOIs in sync; resources (and the ``io_manager``) come from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import Definitions, in_process_executor

from cog_assets.dataset import DATASETS_DIR, load_datasets
from cog_assets.defs.aoi_sensor import build_aoi_sensor
from cog_assets.defs.aoi_statistics import build_aoi_statistics
from cog_assets.defs.assets import build_dataset_assets
from cog_assets.defs.maintenance import build_reconciliation_check, build_republish_job
from cog_assets.defs.resources import resources_from_env
from cog_assets.defs.sensors import build_cmr_sensor


def build_definitions(
    resources: Mapping[str, Any] | None = None, datasets_dir: Path = DATASETS_DIR
) -> Definitions:
    assets, sensors, checks, jobs = [], [], [], []
    datasets = load_datasets(datasets_dir)
    for dataset in datasets:
        built = build_dataset_assets(dataset)
        assets += built.all
        assets.append(build_aoi_statistics(dataset, built.granule_chain[1]))
        checks.append(build_reconciliation_check(dataset, built.stac_collection.key))
        jobs.append(build_republish_job(dataset))
        sensors.append(
            build_cmr_sensor(
                dataset, built.partitions_def, built.granule_chain, built.stac_collection.key
            )
        )
    sensors.append(build_aoi_sensor(datasets))
    return Definitions(
        # one step per run does the work (the granule chain): a second process per step would
        # only add start-up time to every run
        executor=in_process_executor,
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        resources=dict(resources) if resources is not None else resources_from_env(),
    )


defs = build_definitions()
