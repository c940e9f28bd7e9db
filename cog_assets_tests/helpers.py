"""Small builders shared by tests: catalogues in the fake CMR, sensor ticks."""

from __future__ import annotations

import tempfile
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster import (
    Definitions,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DeleteDynamicPartitionsRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)

from dagster_aws.s3 import S3Resource

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.build import build_dataset
from cog_assets.defs.maintenance import IN_SYNC_CHECK
from cog_assets.defs.partitions import ByGranule
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import CONCEPT_ID
from cog_assets.stac.api import StacApi
from cog_assets.store.archive import Archive

from .cmr_server import FakeCmr
from .services import S3Server


def omi_file_name(day: datetime) -> str:
    return f"OMI-Aura_L3-OMDOAO3e_{day:%Ym%m%d}_v003-{day + timedelta(days=2):%Ym%m%d}t014459.he5"


def imerg_file_name(start: datetime) -> str:
    end = start + timedelta(minutes=29, seconds=59)
    minutes = start.hour * 60 + start.minute
    return f"3B-HHR.MS.MRG.3IMERG.{start:%Y%m%d}-S{start:%H%M%S}-E{end:%H%M%S}.{minutes:04d}.V07B.HDF5"


def add_omi_granule(cmr: FakeCmr, content: bytes, day: datetime, file_name: str | None = None, **extra):
    """One daily OMI granule whose file is ``content`` (extra: Granule fields, e.g. omit_data_url)."""
    return cmr.add_granule(
        short_name="OMDOAO3e", version="003", file_name=file_name or omi_file_name(day), begin=day,
        end=day + timedelta(days=1) - timedelta(milliseconds=1), content=content, **extra,
    )


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


def partition_of(granule) -> str:
    """A test CMR granule's partition key when partitioned by granule: ``<YYYY-MM-DD>_<concept-id>``."""
    return f"{granule.begin.astimezone(timezone.utc):%Y-%m-%d}_{granule.concept_id}"


def stored_item(root: Path, dataset_id: str, item_id: str) -> Path:
    """Where a local storage keeps an item (under its data's year and month)."""
    (path,) = (root / dataset_id / "items").glob(f"*/*/{item_id}.json")
    return path


def stored_cog(root: Path, dataset_id: str, item_id: str) -> Path:
    """The local COG a stored item points at."""
    item = json.loads(stored_item(root, dataset_id, item_id).read_text())
    return Path(item["assets"]["cog_default"]["href"][len("file://"):])


def sensor_for(dataset: DatasetConfig, **policy):
    """The dataset's CMR sensor, with sensor-policy overrides."""
    if policy:
        dataset = dataset.model_copy(update={"sensor": dataset.sensor.model_copy(update=policy)})
    return build_dataset(dataset).sensor


@dataclass
class SensorHarness:
    """Ticks a sensor like the daemon does: cursor carried, partition requests applied."""

    sensor_def: object
    cmr_url: str
    instance: DagsterInstance
    cursor: str | None = None
    page_size: int = 2000
    storage_url: str | None = None
    stac_api_url: str | None = None  # kept for callers; the sensor itself never calls the API
    s3: "S3Server | None" = None
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.storage_url is None:
            self.storage_url = Path(tempfile.mkdtemp(prefix="sensor-storage-")).as_uri()

    def tick(self) -> SensorResult | SkipReason:
        assert self.storage_url is not None
        archive = Archive(
            storage_url=self.storage_url,
            s3_endpoint_url=self.s3.endpoint if self.s3 is not None else None,
            s3_region="us-east-1" if self.s3 is not None else None,
        )
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={
                "cmr": CmrClient(base_url=self.cmr_url, backoff_seconds=0.01, page_size=self.page_size),
                "archive": archive,
                "s3": source_bucket_resource(self.s3),
            },
        )
        result = self.sensor_def(context)
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests or []:
                keys = list(request.partition_keys)
                if isinstance(request, DeleteDynamicPartitionsRequest):
                    for key in keys:
                        self.instance.delete_dynamic_partition(request.partitions_def_name, key)
                    self.deleted += keys
                    continue
                self.instance.add_dynamic_partitions(request.partitions_def_name, keys)
                self.added += keys
            if result.cursor is not None:
                self.cursor = result.cursor
        return result


def is_idle(result: SensorResult | SkipReason) -> bool:
    """A tick that found nothing to do (it may still move the cursor)."""
    return isinstance(result, SkipReason) or (
        result.skip_reason is not None and not result.run_requests and not result.dynamic_partitions_requests
    )


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def chain_resources(
    cmr: FakeCmr,
    storage_url: str,
    s3: "S3Server | None" = None,
    token: str | None = "default",
    stac_api_url: str | None = None,
    s3_max_attempts: int = 5,
) -> dict:
    """Resources for running the chain against the fake CMR and a local or S3 storage."""
    from cog_assets.sources.earthdata import EarthdataDownloader

    storage = {
        "storage_url": storage_url,
        "s3_endpoint_url": s3.endpoint if s3 is not None else None,
        "s3_region": "us-east-1" if s3 is not None else None,
        "s3_max_attempts": s3_max_attempts,
    }
    return {
        # an S3-sourced dataset's tests have no CMR: the client is never called then
        "cmr": CmrClient(base_url=cmr.url if cmr else "http://127.0.0.1:9", backoff_seconds=0.01),
        "earthdata": EarthdataDownloader(
            token=(cmr.token if cmr else None) if token == "default" else token,
            insecure_testing_origins=["http://127.0.0.1"], backoff_seconds=0.01,
        ),
        "archive": Archive(**storage),
        "stac_api": StacApi(url=stac_api_url, backoff_seconds=0.01),
        "s3": source_bucket_resource(s3),
    }


def source_bucket_resource(s3: "S3Server | None") -> S3Resource:
    """The ``s3`` resource (source buckets): the test SeaweedFS, or an unused default."""
    if s3 is None:
        return S3Resource(region_name="us-east-1")
    return S3Resource(endpoint_url=s3.endpoint, region_name="us-east-1", max_attempts=2)


class Platform:
    """One dataset's definitions, resources and instance, as a test drives them."""

    def __init__(self, dataset, cmr, storage_url, instance, s3=None, stac_api_url=None, s3_max_attempts=5, **policy):
        if policy:
            dataset = dataset.model_copy(update={"sensor": dataset.sensor.model_copy(update=policy)})
        self.dataset, self.cmr, self.instance = dataset, cmr, instance
        self.s3_max_attempts = s3_max_attempts
        self.defs = build_dataset(dataset)
        self.built = self.defs.assets
        self.storage_url, self.s3, self.stac_api_url = storage_url, s3, stac_api_url
        self.harness = SensorHarness(self.defs.sensor, cmr.url if cmr else "", instance, storage_url=storage_url, s3=s3)

    def key(self, partition: str) -> str:
        """A partition key; a bare concept-id of the test CMR becomes its date-first key."""
        if self.dataset.by_day or not CONCEPT_ID.match(partition):
            return partition
        return ByGranule.key_for(self._record(partition))

    def _record(self, concept_id: str):
        granule = self.cmr.granule(concept_id)
        return type("R", (), {"begin": granule.begin, "end": granule.end, "concept_id": concept_id})

    def resources(self, **overrides):
        return chain_resources(
            self.cmr, self.storage_url, self.s3, stac_api_url=overrides.get("stac_api_url", self.stac_api_url),
            s3_max_attempts=self.s3_max_attempts,
        ) | {k: v for k, v in overrides.items() if k != "stac_api_url"}

    def run(self, partition: str, selection=None, tags=None, **overrides):
        """Materialize one partition (a concept-id or granule key, or a day when by day)."""
        partition = self.key(partition)
        if not self.dataset.by_day and not self.instance.has_dynamic_partition(self.dataset.partitions_name, partition):
            self.instance.add_dynamic_partitions(self.dataset.partitions_name, [partition])
        return materialize(
            [self.built.chain],
            selection=selection,
            partition_key=partition,
            resources=self.resources(**overrides),
            instance=self.instance,
            tags=tags,
            raise_on_error=False,
        )

    def run_range(self, first: str, last: str, tags=None, **config):
        """One run over a range of partitions, as a backfill's ranged run (bare concept-ids of the
        test CMR are registered first, in order); ``config``: the chain's run settings (workers,
        downloads)."""
        for partition in (first, last):
            key = self.key(partition)
            if not self.dataset.by_day and not self.instance.has_dynamic_partition(self.dataset.partitions_name, key):
                self.instance.add_dynamic_partitions(self.dataset.partitions_name, [key])
        range_tags = {"dagster/asset_partition_range_start": self.key(first), "dagster/asset_partition_range_end": self.key(last)}
        run_config = {"ops": {self.built.chain.node_def.name: {"config": config}}} if config else None
        return materialize(
            [self.built.chain],
            resources=self.resources(),
            instance=self.instance,
            tags={**range_tags, **(tags or {})},
            run_config=run_config,
            raise_on_error=False,
        )

    def tick(self):
        """One sensor tick, its partition requests applied (runs are not executed: see execute)."""
        return self.harness.tick()

    def execute(self, result) -> list:
        """Execute a tick's run requests in process, as the daemon would launch them."""
        if not isinstance(result, SensorResult):
            return []
        outcomes = []
        for request in result.run_requests or []:
            tags = dict(request.tags or {})
            if request.job_name == self.defs.withdraw_job.name:
                outcomes.append(self.defs.withdraw_job.execute_in_process(
                    run_config=request.run_config, resources=self.resources(), instance=self.instance, raise_on_error=False,
                ))
            elif request.job_name == self.defs.collection_job.name:
                outcomes.append(materialize([self.built.stac_collection], resources=self.resources(), instance=self.instance))
            else:  # the sensor's own job, so its runs can be found by job name (retries)
                defs = Definitions(assets=[self.built.chain], jobs=[self.defs.chain_job], resources=self.resources())
                outcomes.append(defs.resolve_job_def(request.job_name).execute_in_process(
                    partition_key=request.partition_key, instance=self.instance, tags=tags, raise_on_error=False,
                ))
        return outcomes

    def tick_and_execute(self) -> tuple:
        result = self.tick()
        return result, self.execute(result)

    def metadata(self, partition: str, step: str = "stac_item") -> dict:
        """The latest materialization's metadata of one of the chain's assets (must be ``partition``'s)."""
        event = self.instance.get_latest_materialization_event(AssetKey([self.dataset.id, step]))
        assert event.dagster_event.partition == self.key(partition)
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def archive(self) -> Archive:
        return self.resources()["archive"]

    def check(self, name: str = IN_SYNC_CHECK):
        checks = self.defs.checks
        result = materialize(
            [self.built.stac_collection, *checks],
            selection=AssetSelection.checks(*checks),
            resources=self.resources(),
            instance=self.instance,
        )
        return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)

    def republish(self, **config):
        job = self.defs.republish_job
        op = f"{self.dataset.id}_republish_items"
        return job.execute_in_process(
            run_config={"ops": {op: {"config": config}}}, resources=self.resources(), instance=self.instance
        )


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
