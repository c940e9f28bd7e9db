"""``<dataset>_catalog_sensor``: keeps the static catalog current without anyone clicking.

After any run that changed items — the CMR sensor's, a backfill, a withdrawal — it requests one
``stac_collection`` run, which rewrites the collection's links and its year/month sub-catalogs.
It runs by default (it only reads the instance), never requests a second writer while one is
queued or running, and the runs carry a tag the run queue limits to one at a time.
"""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from cog_assets.dataset import DatasetConfig

CATALOG_WRITER_TAG = "cog_assets/catalog_writer"
_IN_FLIGHT = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def _last_change(instance: DagsterInstance, item_key: AssetKey, withdraw_job: str) -> float:
    """When items last changed: the latest stac_item materialization or finished withdrawal."""
    times = [0.0]
    event = instance.get_latest_materialization_event(item_key)
    if event is not None:
        times.append(event.timestamp)
    finished = instance.get_run_records(
        RunsFilter(job_name=withdraw_job, statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]), limit=1
    )
    if finished and finished[0].end_time:
        times.append(finished[0].end_time)
    return max(times)


def build_catalog_sensor(dataset: DatasetConfig, item_key: AssetKey, collection_key: AssetKey, collection_job: Any,
                         withdraw_job: JobDefinition):
    @sensor(
        name=f"{dataset.id}_catalog_sensor",
        minimum_interval_seconds=60,
        jobs=[collection_job],
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Rewrites {dataset.id}'s static catalog (collection links, year/month sub-catalogs) "
        "after runs that change items; one writer at a time.",
    )
    def catalog_sensor(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        instance = context.instance
        changed = _last_change(instance, item_key, withdraw_job.name)
        written = instance.get_latest_materialization_event(collection_key)
        if written is not None:  # what the last writer listed: items changed after its start are new to it
            record = instance.get_run_record_by_id(written.run_id)
            listed_at = record.start_time if record is not None and record.start_time else written.timestamp
        if changed == 0.0 or (written is not None and listed_at >= changed):
            return SkipReason("the static catalog is current")
        if instance.get_run_records(RunsFilter(job_name=collection_job.name, statuses=_IN_FLIGHT), limit=1):
            return SkipReason("a catalog writer is already queued or running")
        return RunRequest(run_key=f"catalog@{changed:.3f}", job_name=collection_job.name, tags={CATALOG_WRITER_TAG: dataset.id})

    return catalog_sensor
