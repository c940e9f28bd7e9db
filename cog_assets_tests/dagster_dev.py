"""`dagster dev` (webserver + daemon) in the background, driven the way the UI drives it.

Backfills are launched through the webserver's GraphQL ``launchPartitionBackfill`` mutation
(what the "Materialize partitions" dialog sends) and executed by the daemon's backfill loop,
the run queue and the default run launcher, as in a deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .services import free_port

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


class DagsterDev:
    def __init__(self, home: Path, env: dict[str, str], timeout: float = 180.0, location: Path | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.log = home / "dagster-dev.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev",
             *(["-f", str(location)] if location else ["-m", "cog_assets.definitions"]),
             "-h", "127.0.0.1", "-p", str(self.port)],
            env={**env, "DAGSTER_HOME": str(home)}, cwd=home,
            stdout=subprocess.DEVNULL, stderr=self._log_file,
            start_new_session=True,  # its own process group, stopped with SIGINT below
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.graphql("{ version }").get("data"):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"dagster dev did not start; see {self.log}")
            time.sleep(0.5)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        return response.json()

    def launch_backfill(self, partition_keys: list[str], asset_paths: list[list[str]]) -> str:
        params = {
            "partitionNames": partition_keys,
            "assetSelection": [{"path": path} for path in asset_paths],
            "fromFailure": False,
            "tags": [],
        }
        launched = self.graphql(LAUNCH_BACKFILL, {"params": params})["data"]["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {launched}")
        return launched["backfillId"]

    def launch_ranged_run(self, job: str, first: str, last: str, asset_paths: list[list[str]]) -> str:
        """One run of ``job`` over partitions ``first``..``last``, launched as the Launchpad does
        with Dagster's range tags: it goes straight to the run queue, not through the backfill
        daemon."""
        params = {
            "selector": {"repositoryLocationName": "cog_assets.definitions", "repositoryName": "__repository__",
                         "jobName": job, "assetSelection": [{"path": path} for path in asset_paths]},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": "dagster/asset_partition_range_start", "value": first},
                                           {"key": "dagster/asset_partition_range_end", "value": last}]},
        }
        launched = self.graphql(LAUNCH_RUN, {"params": params})["data"]["launchPipelineExecution"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"run not launched: {launched}")
        return launched["run"]["runId"]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log_file.close()


def wait_for_backfill(instance: Any, backfill_id: str, timeout: float = 600.0) -> Any:
    """The backfill once the daemon has finished it (polls; the daemon works on a 30 s loop)."""
    from dagster._core.execution.backfill import BulkActionStatus

    deadline = time.monotonic() + timeout
    while True:
        backfill = instance.get_backfill(backfill_id)
        if backfill.status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
            return backfill
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {backfill.status} after {timeout:.0f} s")
        time.sleep(0.5)


def wait_for_run(instance: Any, run_id: str, timeout: float = 600.0) -> Any:
    """The run once it has finished (polls)."""
    deadline = time.monotonic() + timeout
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.status if run else 'missing'} after {timeout:.0f} s")
        time.sleep(0.5)
