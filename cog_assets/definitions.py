"""The code location: every dataset file under ``datasets/`` becomes assets and a sensor.

Settings come from the environment (see README, "Configuration"). Secrets are passed as
``EnvVar`` so their values never appear in run config, the UI or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import Definitions, EnvVar, in_process_executor

from .assets import build_dataset_assets
from .cmr import DEFAULT_CMR_URL, CmrClient
from .dataset import DATASETS_DIR, load_datasets
from .earthdata import EARTHDATA_HOST_SUFFIXES, EarthdataDownloader
from .catalog import StaticCatalog
from .maintenance import build_reconciliation_check, build_republish_job
from .sensors import build_cmr_sensor
from .stac_api import StacApi


def default_storage_url() -> str:
    """A local folder beside where the platform was started: ./cog_assets_data."""
    return (Path.cwd() / "cog_assets_data").resolve().as_uri()


def _secret(name: str) -> EnvVar | None:
    return EnvVar(name) if os.environ.get(name) else None


def resources_from_env() -> dict[str, Any]:
    """Resources configured from COG_ASSETS_*, EARTHDATA_TOKEN and the AWS variables."""
    extra_hosts = [h.strip() for h in os.environ.get("COG_ASSETS_EARTHDATA_HOSTS", "").split(",")]
    storage = {
        "storage_url": os.environ.get("COG_ASSETS_STORAGE") or default_storage_url(),
        "s3_endpoint_url": os.environ.get("AWS_ENDPOINT_URL") or None,
        "s3_region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    }
    return {
        "cmr": CmrClient(base_url=os.environ.get("COG_ASSETS_CMR_URL") or DEFAULT_CMR_URL),
        "earthdata": EarthdataDownloader(
            token=_secret("EARTHDATA_TOKEN"),
            token_hosts=[*EARTHDATA_HOST_SUFFIXES, *filter(None, extra_hosts)],
        ),
        "catalog": StaticCatalog(**storage),
        "stac_api": StacApi(
            url=os.environ.get("COG_ASSETS_STAC_API_URL") or None,
            token=_secret("COG_ASSETS_STAC_API_TOKEN"),
        ),
    }


def build_definitions(
    resources: Mapping[str, Any] | None = None, datasets_dir: Path = DATASETS_DIR
) -> Definitions:
    assets, sensors, checks, jobs = [], [], [], []
    for dataset in load_datasets(datasets_dir):
        built = build_dataset_assets(dataset)
        assets += built.all
        checks.append(build_reconciliation_check(dataset, built.stac_collection.key))
        jobs.append(build_republish_job(dataset))
        sensors.append(
            build_cmr_sensor(
                dataset, built.partitions_def, built.granule_chain, built.stac_collection.key
            )
        )
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
