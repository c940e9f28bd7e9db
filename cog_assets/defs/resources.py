"""Resources configured from the environment (README, "Configuration").

Secrets are passed as ``EnvVar`` so their values never appear in run config, the UI or logs.
Sensors run in the code server and runs in their own processes (or tasks): both build their
resources here, so each needs the same variables (deploy/ lists them for both).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from cog_assets import tokens
from cog_assets.defs.aois import AoiFolder, default_aois_url
from cog_assets.defs.io_manager import CogAssetsIOManager
from cog_assets.sources.cmr.client import DEFAULT_CMR_URL, CmrClient
from cog_assets.sources.earthdata import EARTHDATA_HOST_SUFFIXES, EarthdataDownloader
from cog_assets.stac.api import StacApi
from cog_assets.store.archive import Archive

# the secrets the code reads (AWS credentials are boto3's: a task role in production)
SECRET_VARIABLES = ("EARTHDATA_TOKEN", "COG_ASSETS_STAC_API_TOKEN")


def default_storage_url() -> str:
    """A local folder beside where the platform was started: ./cog_assets_data."""
    return (Path.cwd() / "cog_assets_data").resolve().as_uri()


def _secret(name: str) -> EnvVar | None:
    return EnvVar(name) if os.environ.get(name) else None


def resources_from_env() -> dict[str, Any]:
    """Resources configured from COG_ASSETS_*, EARTHDATA_TOKEN and the AWS variables; the
    IO manager and the AOI folder share the storage's S3 settings."""
    extra_hosts = [h.strip() for h in os.environ.get("COG_ASSETS_EARTHDATA_HOSTS", "").split(",")]
    insecure = tokens.parse_insecure_origins(os.environ.get(tokens.INSECURE_TESTING_ENV, ""))
    storage = {
        "storage_url": os.environ.get("COG_ASSETS_STORAGE") or default_storage_url(),
        "s3_endpoint_url": os.environ.get("AWS_ENDPOINT_URL") or None,
        "s3_region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    }
    s3 = {k: v for k, v in storage.items() if k != "storage_url"}
    return {
        "io_manager": CogAssetsIOManager(**storage),
        "aois": AoiFolder(url=os.environ.get("COG_ASSETS_AOIS") or default_aois_url(storage["storage_url"]), **s3),
        "cmr": CmrClient(base_url=os.environ.get("COG_ASSETS_CMR_URL") or DEFAULT_CMR_URL),
        "earthdata": EarthdataDownloader(
            token=_secret("EARTHDATA_TOKEN"),
            token_hosts=[*EARTHDATA_HOST_SUFFIXES, *filter(None, extra_hosts)],
            insecure_testing_origins=insecure,
        ),
        "archive": Archive(**storage),
        # source buckets (datasets with source kind s3); credentials come from boto3's chain
        "s3": S3Resource(endpoint_url=s3["s3_endpoint_url"], region_name=s3["s3_region"], max_attempts=5),
        "stac_api": StacApi(
            url=os.environ.get("COG_ASSETS_STAC_API_URL") or None,
            token=_secret("COG_ASSETS_STAC_API_TOKEN"),
            insecure_testing_origins=insecure,
        ),
    }
