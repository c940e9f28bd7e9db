"""Small builders shared by tests: catalogues in the fake CMR, sensor ticks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from cog_assets.cmr import CmrClient
from cog_assets.dataset import DatasetConfig

from .cmr_server import FakeCmr
from .services import S3Server


def omi_file_name(day: datetime) -> str:
    return f"OMI-Aura_L3-OMDOAO3e_{day:%Ym%m%d}_v003-{day + timedelta(days=2):%Ym%m%d}t014459.he5"


def imerg_file_name(start: datetime) -> str:
    end = start + timedelta(minutes=29, seconds=59)
    minutes = start.hour * 60 + start.minute
    return f"3B-HHR.MS.MRG.3IMERG.{start:%Y%m%d}-S{start:%H%M%S}-E{end:%H%M%S}.{minutes:04d}.V07B.HDF5"


def add_omi_days(cmr: FakeCmr, dataset: DatasetConfig, first: datetime, days: int) -> None:
    """``days`` daily OMI granules (no file content), oldest first."""
    cmr.add_many(
        [
            dict(
                short_name=dataset.cmr.short_name,
                version=dataset.cmr.version,
                provider=dataset.cmr.provider,
                file_name=omi_file_name(first + timedelta(days=i)),
                begin=first + timedelta(days=i),
                end=first + timedelta(days=i + 1) - timedelta(milliseconds=1),
            )
            for i in range(days)
        ]
    )


@dataclass
class SensorHarness:
    """Ticks a sensor like the daemon does: cursor carried, partition requests applied."""

    sensor_def: object
    cmr_url: str
    instance: DagsterInstance
    cursor: str | None = None
    page_size: int = 2000
    added: list[str] = field(default_factory=list)

    def tick(self) -> SensorResult | SkipReason:
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={
                "cmr": CmrClient(base_url=self.cmr_url, backoff_seconds=0.01, page_size=self.page_size)
            },
        )
        result = self.sensor_def(context)
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests or []:
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
                self.added += list(request.partition_keys)
            if result.cursor is not None:
                self.cursor = result.cursor
        return result


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def chain_resources(cmr: FakeCmr, storage_url: str, s3: "S3Server | None" = None, token: str | None = "default") -> dict:
    """Resources for running the chain against the fake CMR and a local or S3 storage."""
    from cog_assets.earthdata import EarthdataDownloader
    from cog_assets.io_manager import StorageIOManager

    return {
        "cmr": CmrClient(base_url=cmr.url, backoff_seconds=0.01),
        "earthdata": EarthdataDownloader(
            token=cmr.token if token == "default" else token, token_hosts=["127.0.0.1"], backoff_seconds=0.01
        ),
        "io_manager": StorageIOManager(
            storage_url=storage_url,
            s3_endpoint_url=s3.endpoint if s3 is not None else None,
            s3_region="us-east-1" if s3 is not None else None,
        ),
    }


def failure_messages(result) -> list[str]:
    """The error messages of failed steps in an ExecuteInProcessResult."""
    return [
        event.step_failure_data.error.message
        + "".join(cause.message for cause in _causes(event.step_failure_data.error))
        for event in result.all_events
        if event.is_step_failure
    ]


def _causes(error):
    while error.cause is not None:
        error = error.cause
        yield error
