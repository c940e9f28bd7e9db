"""A compressed soak: the test CMR plays a scripted stretch of CMR activity — new granules,
renamed revisions, late-indexed records, deletions, bursts of 429 and 500 — while `dagster dev`'s
daemon runs the sensor and the runs it requests. Afterwards the promise holds exactly."""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from cog_assets.dataset import DATASETS_DIR, load_dataset
from cog_assets.processing import invariant
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.stac.api import StacApi
from cog_assets.store.archive import Archive

from .cmr_server import Fault, FakeCmr
from .dagster_dev import DagsterDev
from .granule_files import make_omi_granule, omi_values

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ROUNDS, ROUND_SECONDS = 16, 12.0
FIRST_DAY = datetime(2015, 1, 1, tzinfo=timezone.utc)
TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 200) { status timestamp runIds } } }
  }
}
"""
START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on PythonError { message } }
}
"""
SELECTOR = {"repositoryName": "__repository__", "repositoryLocationName": "cog_assets.definitions",
            "sensorName": "omdoao3e_cmr_sensor"}


@dataclass
class Script:
    """What the test CMR does, round by round (seeded: the same stretch every time)."""

    cmr: FakeCmr
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    live: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    day: int = 0
    events: dict[str, int] = field(default_factory=dict)

    def _count(self, kind: str, n: int = 1) -> None:
        self.events[kind] = self.events.get(kind, 0) + n

    def _content(self) -> bytes:
        values = omi_values(rows=180, cols=360, seed=self.rng.randrange(1000))
        return make_omi_granule(values, grid_spacing="(1,1)").content

    def _name(self, day: datetime, produced: int) -> str:
        return f"OMI-Aura_L3-OMDOAO3e_{day:%Ym%m%d}_v003-{day + timedelta(days=2):%Ym%m%d}t{produced:06d}.he5"

    def new(self, hidden: bool = False) -> None:
        day = FIRST_DAY + timedelta(days=self.day)
        self.day += 1
        granule = self.cmr.add_granule(
            short_name="OMDOAO3e", version="003", file_name=self._name(day, 14459), begin=day,
            end=day + timedelta(days=1, milliseconds=-1), content=self._content(), indexed=not hidden,
        )
        (self.hidden if hidden else self.live).append(granule)
        self._count("late-indexed granule" if hidden else "new granule")

    def revise(self, rename: bool) -> None:
        granule = self.rng.choice(self.live)
        day = granule.begin
        name = self._name(day, self.rng.randrange(100000, 235959)) if rename else granule.file_name
        revised = self.cmr.revise(granule.concept_id, content=self._content(), file_name=name)
        self.live[self.live.index(granule)] = revised
        self._count("renamed revision" if rename else "revision")

    def delete(self) -> None:
        granule = self.live.pop(self.rng.randrange(len(self.live)))
        self.cmr.delete(granule.concept_id)
        self._count("deletion")

    def index_hidden(self) -> None:
        for granule in self.hidden:
            self.cmr.index(granule.concept_id)
            self.live.append(granule)
        self._count("late record indexed", len(self.hidden))
        self.hidden = []

    def faults(self) -> None:
        burst = [Fault(status=429, retry_after="1"), Fault(status=500)]
        self.cmr.fail_search(*burst)
        self._count("CMR 429/500 answer", len(burst))

    def round(self) -> None:
        self.index_hidden()
        for _ in range(8):
            self.new()
        for _ in range(2):
            self.new(hidden=True)
        self.revise(rename=True)
        self.revise(rename=False)
        self.revise(rename=True)
        self.delete()
        self.delete()
        self.faults()


def _datasets_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "datasets"
    folder.mkdir()
    raw = yaml.safe_load((DATASETS_DIR / "omdoao3e.yaml").read_text())
    raw["sensor"] = {"minimum_interval_seconds": 30, "auto_run_days": 0, "lookback_minutes": 60}
    (folder / "omdoao3e.yaml").write_text(yaml.safe_dump(raw))
    return folder


def _env(cmr: FakeCmr, seaweedfs, storage: str, api: str, home: Path, datasets: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))}
    env.update(seaweedfs.env())
    env.update(COG_ASSETS_CMR_URL=cmr.url, COG_ASSETS_STORAGE=storage, COG_ASSETS_STAC_API_URL=api,
               COG_ASSETS_INSECURE_TESTING_ORIGINS="http://127.0.0.1", EARTHDATA_TOKEN=cmr.token,
               COG_ASSETS_DATASETS=str(datasets))
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return env


def _failure(instance: DagsterInstance, run_id: str) -> str:
    """The first line of a failed run's step failure."""
    from dagster import DagsterEventType

    for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        return event.dagster_event.step_failure_data.error.message.splitlines()[-1][:300]
    return "(no step failure)"


def _in_flight(home: Path) -> int:
    with DagsterInstance.from_config(str(home)) as instance:
        return len(instance.get_runs(RunsFilter(statuses=[
            DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
        ])))


def _settle(dev: DagsterDev, home: Path, timeout: float = 240.0) -> list:
    """Poll (bounded) until no run is in flight and a tick that began after that found nothing
    to do; returns the sensor's ticks."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while True:
        ticks = dev.graphql(TICKS, {"selector": SELECTOR})["data"]["sensorOrError"]["sensorState"]["ticks"]
        if _in_flight(home):
            idle_since = None
        elif idle_since is None:
            idle_since = time.time()
        elif any(t["timestamp"] > idle_since and t["status"] == "SKIPPED" for t in ticks) and not _in_flight(home):
            return ticks
        assert time.monotonic() < deadline, f"not settled after {timeout:.0f} s; see {dev.log}"
        time.sleep(2)


def test_soak_keeps_the_promise(fake_cmr, tmp_path, seaweedfs, s3_prefix_url, stac_api_url, monkeypatch):
    datasets = _datasets_folder(tmp_path)
    home = tmp_path / "home"
    env = _env(fake_cmr, seaweedfs, s3_prefix_url, stac_api_url, home, datasets)
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance's dagster.yaml reads it
    script = Script(fake_cmr)
    dev = DagsterDev(home, env)
    try:
        started = dev.graphql(START_SENSOR, {"selector": SELECTOR})["data"]["startSensor"]
        assert started["__typename"] == "Sensor", started
        began = time.monotonic()
        for n in range(ROUNDS):
            script.round()
            time.sleep(max(0.0, began + (n + 1) * ROUND_SECONDS - time.monotonic()))  # the script's pace
        script.index_hidden()
        played = time.monotonic()
        ticks = _settle(dev, home)
        settled_after = time.monotonic() - played
    finally:
        dev.stop()
    dataset = load_dataset(datasets / "omdoao3e.yaml")
    archive = Archive(storage_url=s3_prefix_url, s3_endpoint_url=seaweedfs.endpoint, s3_region="us-east-1")
    report = invariant.check(CmrClient(base_url=fake_cmr.url), archive, StacApi(url=stac_api_url), dataset, hash_all=True)
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        failures = [_failure(instance, r.run_id) for r in runs if r.status == DagsterRunStatus.FAILURE]
    kinds = [r.job_name.removeprefix("omdoao3e_") for r in runs]
    figures = {
        "events": sum(script.events.values()), **script.events, "ticks": len(ticks),
        **{f"ticks: {status.lower()}": sum(t["status"] == status for t in ticks) for status in ("SUCCESS", "SKIPPED", "FAILURE")},
        "ticks that requested runs": sum(bool(t["runIds"]) for t in ticks),
        "runs": len(runs), **{f"runs: {k}": kinds.count(k) for k in sorted(set(kinds))},
        "runs failed": len(failures),
        "activity (s)": round(played - began, 1), "settled after (s)": round(settled_after, 1),
        "live granules": report.live_in_cmr, "stored items": report.stored_items, "API items": report.api_items,
        "violations": sum(len(v) for v in report.violations.values()),
    }
    print("\nsoak figures:\n" + "\n".join(f"  {k:<28} {v}" for k, v in figures.items()))
    print("failed runs (expected: a granule deleted or revised again before its run):\n" + "\n".join(failures))
    assert figures["events"] >= 300 and played - began <= 300
    assert report.holds, report.summary()
    assert report.live_in_cmr == report.stored_items == report.api_items == len(script.live)
    assert report.awaiting_processing == 0 and report.pending_objects == 0
