"""The code location (``cog_assets.definitions:defs``): every dataset file under ``datasets/``
becomes assets, a sensor, checks and jobs; resources come from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import Definitions, in_process_executor

from cog_assets.dataset import DATASETS_DIR, load_datasets
from cog_assets.defs.build import build_dataset
from cog_assets.defs.resources import resources_from_env


def build_definitions(
    resources: Mapping[str, Any] | None = None, datasets_dir: Path | None = None
) -> Definitions:
    """The definitions of every dataset file in ``datasets_dir`` (default: COG_ASSETS_DATASETS,
    else the shipped ``cog_assets/datasets/``)."""
    folder = datasets_dir or Path(os.environ.get("COG_ASSETS_DATASETS") or DATASETS_DIR)
    assets, sensors, checks, jobs = [], [], [], []
    for dataset in load_datasets(folder):
        built = build_dataset(dataset)
        assets += built.assets.all
        checks += built.checks
        jobs += built.jobs
        sensors += [built.sensor, built.catalog_sensor]
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
