"""Failed granules are retried without anyone clicking.

A run the CMR sensor requested can fail for a passing reason (an Earthdata outage longer than
the download retries, S3 or the STAC API briefly down); its run key is used and the harvest has
moved past the revision, so nothing would ask again. Each tick therefore looks at the chain
runs that failed since the previous tick and requests their failed partitions again (ranged
runs of consecutive partitions), up to ``MAX_ATTEMPTS`` attempts per revision; the tick
interval is the back-off. What still fails after that stays failed in the UI, with its cause,
and the ``in_step_with_cmr`` check reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cog_assets.sources.plan import ranges

ATTEMPT_TAG = "cog_assets/attempt"
RETRY_OF_TAG = "cog_assets/retry_of"  # the failed run a retry run was requested for
MAX_ATTEMPTS = 4
# failures are stamped when they happen and stored later (by run workers on other hosts):
# each look re-reads this far behind the last stamp it saw
OVERLAP = timedelta(minutes=5)


def failed_partitions(instance: DagsterInstance, run_id: str, exists: Callable[[str], bool]) -> list[str]:
    """The partitions a failed run was planned to materialize and did not (also when it failed
    before its step started, e.g. an end of its range was deleted), that still exist."""
    planned: set[str] = set()
    for event in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
        data = event.dagster_event.event_specific_data if event.dagster_event else None
        if data is None or data.asset_key.path[-1] != "stac_item":
            continue
        if data.partition is not None:
            planned.add(data.partition)
        elif data.partitions_subset is not None:
            planned |= set(data.partitions_subset.get_partition_keys())
    done = {
        event.dagster_event.partition
        for event in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        if event.dagster_event and event.dagster_event.asset_key and event.dagster_event.asset_key.path[-1] == "stac_item"
    }
    return sorted(k for k in planned - done if exists(k))


def retry_requests(
    instance: DagsterInstance,
    job_name: str,
    since: float | None,
    exists: Callable[[str], bool],
    order: Callable[[str], int],
    size: int,
) -> tuple[list[RunRequest], float | None, list[str]]:
    """Run requests for the failed partitions of chain runs that ended after ``since``; where to
    look from next tick; and what was given up (their last attempt failed)."""
    if since is None:  # the first tick: nothing of ours failed yet
        return [], datetime.now(timezone.utc).timestamp(), []
    records = instance.get_run_records(
        RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.FAILURE],
                   updated_after=datetime.fromtimestamp(since, tz=timezone.utc) - OVERLAP)
    )
    requests: list[RunRequest] = []
    given_up: list[str] = []
    latest = since
    for record in sorted(records, key=lambda r: r.update_timestamp.timestamp()):
        latest = max(latest, record.update_timestamp.timestamp())
        if _retried(instance, record.dagster_run.run_id):
            continue  # looked at already (the overlap reads it again)
        attempt = int(record.dagster_run.tags.get(ATTEMPT_TAG, "1"))
        keys = failed_partitions(instance, record.dagster_run.run_id, exists)
        if attempt >= MAX_ATTEMPTS:
            given_up += keys
            continue
        requests += _requests(job_name, keys, order, size, attempt + 1, record.dagster_run.run_id)
    return requests, latest, given_up


def _retried(instance: DagsterInstance, run_id: str) -> bool:
    return bool(instance.get_run_ids(RunsFilter(tags={RETRY_OF_TAG: run_id}), limit=1))


def _requests(job_name: str, keys: Iterable[str], order: Callable[[str], int], size: int, attempt: int,
              parent: str) -> list[RunRequest]:
    requests = []
    for first, last, group in ranges(list(keys), order, size):
        tags = {ATTEMPT_TAG: str(attempt), RETRY_OF_TAG: parent, "cog_assets/granules": str(len(group))}
        key = f"retry{attempt}:{parent}:{first}"
        if first == last:
            requests.append(RunRequest(run_key=key, job_name=job_name, partition_key=first, tags=tags))
        else:
            tags.update({ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
            requests.append(RunRequest(run_key=key, job_name=job_name, tags=tags))
    return requests
