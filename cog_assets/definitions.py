"""The code location: every dataset file under ``datasets/`` becomes assets and a sensor.

Settings come from the environment (see README, "Configuration"). Secrets are passed as
``EnvVar`` so their values never appear in run config, the UI or logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions, EnvVar
from dagster_aws.s3 import S3Resource

from .assets import build_dataset_assets
from .cmr import DEFAULT_CMR_URL, CmrClient
from .dataset import DATASETS_DIR, load_datasets
from .earthdata import EarthdataDownloader
from .io_manager import StorageIOManager
from .sensors import build_cmr_sensor


def default_storage_url() -> str:
    """A local folder beside where the platform was started: ./cog_assets_data."""
    return (Path.cwd() / "cog_assets_data").resolve().as_uri()


def _secret(name: str) -> EnvVar | None:
    return EnvVar(name) if os.environ.get(name) else None


def build_definitions(datasets_dir: Path = DATASETS_DIR) -> Definitions:
    assets, sensors = [], []
    for dataset in load_datasets(datasets_dir):
        built = build_dataset_assets(dataset)
        assets += built.all
        sensors.append(
            build_cmr_sensor(dataset, built.partitions_def, built.granule_chain, built.stac_collection.key)
        )
    s3 = S3Resource(
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    )
    return Definitions(
        assets=assets,
        sensors=sensors,
        resources={
            "cmr": CmrClient(base_url=os.environ.get("COG_ASSETS_CMR_URL") or DEFAULT_CMR_URL),
            "earthdata": EarthdataDownloader(token=_secret("EARTHDATA_TOKEN")),
            "io_manager": StorageIOManager(
                storage_url=os.environ.get("COG_ASSETS_STORAGE") or default_storage_url(), s3=s3
            ),
        },
    )


defs = build_definitions()
