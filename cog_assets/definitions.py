"""The code location (``cog_assets.definitions:defs``): every dataset file under ``datasets/``
becomes assets (with its AOI statistics), a sensor, checks and jobs; one ``aoi_sensor`` keeps
the AOIs in sync; resources (and the ``io_manager``) come from the environment."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import BetaWarning, Definitions, in_process_executor

from cog_assets.dataset import DATASETS_DIR, load_datasets
from cog_assets.defs.aoi_sensor import build_aoi_sensor
from cog_assets.defs.aoi_statistics import build_aoi_statistics
from cog_assets.defs.build import build_dataset
from cog_assets.defs.resources import resources_from_env


def build_definitions(
    resources: Mapping[str, Any] | None = None, datasets_dir: Path | None = None
) -> Definitions:
    """The definitions of every dataset file in ``datasets_dir`` (default: COG_ASSETS_DATASETS,
    else the shipped ``cog_assets/datasets/``)."""
    folder = datasets_dir or Path(os.environ.get("COG_ASSETS_DATASETS") or DATASETS_DIR)
    assets, sensors, checks, jobs = [], [], [], []
    datasets = load_datasets(folder)
    for dataset in datasets:
        built = build_dataset(dataset)
        assets += [*built.assets.all, build_aoi_statistics(dataset, built.assets.granule_chain[1])]
        checks += built.checks
        jobs += built.jobs
        sensors += [built.sensor, built.catalog_sensor]
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


# Dagster 1.13 re-creates a sensor whose targets are asset jobs with owners=None, which trips its
# own "owners is beta" notice at every load although no owner is set: not ours to act on.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer `SensorDefinition", category=BetaWarning)

with warnings.catch_warnings():
    # BackfillPolicy (ranged backfill runs) is a beta parameter in Dagster 1.13, used on purpose;
    # its notice would otherwise greet every start of the UI (README, "Two commands")
    warnings.simplefilter("ignore", BetaWarning)
    defs = build_definitions()
