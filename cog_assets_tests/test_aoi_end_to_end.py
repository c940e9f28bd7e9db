"""AOI statistics kept in sync by `dagster dev` (daemon, sensors, run launcher), nobody clicking:
an AOI is saved with one row per stored COG; granules CMR adds, revises and deletes are
picked up by the CMR sensor and the table follows."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from dagster import DagsterInstance

from cog_assets.dataset import DATASETS_DIR

from .dagster_dev import DagsterDev
from .granule_files import make_omi_granule, omi_coordinate_values
from .helpers import Platform, add_omi_granule, now_utc

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
AOI = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
    [[-5.1, 42.2], [20.3, 41.7], [24.8, 55.1], [-4.6, 56.3], [-5.1, 42.2]]]}}


def _code_location(tmp_path: Path) -> Path:
    """The platform's definitions with omdoao3e polled every 30 s instead of 300 s."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    config = yaml.safe_load((DATASETS_DIR / "omdoao3e.yaml").read_text())
    config.setdefault("sensor", {})["minimum_interval_seconds"] = 30
    (datasets / "omdoao3e.yaml").write_text(yaml.safe_dump(config))
    module = tmp_path / "location.py"
    module.write_text(
        "from pathlib import Path\nfrom cog_assets.definitions import build_definitions\n"
        f"defs = build_definitions(datasets_dir=Path({str(datasets)!r}))\n"
    )
    return module


def _wait(what: str, check: Callable[[], Any], dev: DagsterDev, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log tail:\n{dev.log.read_text()[-4000:]}")
        time.sleep(1)  # polling the daemon's progress with a deadline, not synchronising threads


def test_aoi_statistics_follow_cmr_through_dagster_dev(datasets, fake_cmr, tmp_path, monkeypatch):
    storage = tmp_path / "storage"
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))}
    env.update(COG_ASSETS_CMR_URL=fake_cmr.url, COG_ASSETS_STORAGE=storage.as_uri(),
               COG_ASSETS_INSECURE_TESTING_ORIGINS="http://127.0.0.1", EARTHDATA_TOKEN=fake_cmr.token)
    today = now_utc().replace(hour=0, minute=0, second=0, microsecond=0)

    def add(days_ago: int, offset: float):
        content = make_omi_granule(omi_coordinate_values(offset=offset)).content
        return add_omi_granule(fake_cmr, content, today - timedelta(days=days_ago))

    stored = [add(6, 0), add(5, 1)]
    with DagsterInstance.from_config(str(home)) as instance:  # the history, stored before
        platform = Platform(datasets["omdoao3e"], fake_cmr, storage.as_uri(), instance)
        assert all(platform.run(g.concept_id).success for g in stored)
    location = _code_location(tmp_path)
    started = subprocess.run([sys.executable, "-m", "dagster", "sensor", "start", "omdoao3e_cmr_sensor",
                              "-f", str(location)], env={**env, "DAGSTER_HOME": str(home)}, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    aois = storage / "aois"
    table = storage / "omdoao3e" / "aoi_statistics" / "europe.parquet"

    def rows() -> dict[str, dict]:
        if not table.exists():
            return {}
        return {r["concept_id"]: r for r in pq.read_table(io.BytesIO(table.read_bytes())).to_pylist()}

    def status() -> dict:
        path = aois / "europe.status.json"
        return json.loads(path.read_text()) if path.exists() else {}

    dev = DagsterDev(home, {**env, "DAGSTER_HOME": str(home)}, location=location)
    try:
        aois.mkdir(parents=True)
        (aois / "europe.geojson").write_text(json.dumps(AOI))
        _wait("the AOI saved", lambda: status().get("status") == "saved", dev)
        assert status()["rows"] == {"omdoao3e": 2} and set(rows()) == {g.concept_id for g in stored}
        before = rows()

        added = [add(2, 2), add(1, 3)]
        wanted = {g.concept_id for g in [*stored, *added]}
        _wait("the new granules' rows", lambda: set(rows()) == wanted, dev)
        after = rows()
        assert all(after[g.concept_id]["computed_at"] == before[g.concept_id]["computed_at"] for g in stored)
        assert [round(after[g.concept_id]["mean"] - after[stored[0].concept_id]["mean"], 3) for g in added] == [2, 3]

        revised = fake_cmr.revise(added[0].concept_id, content=make_omi_granule(omi_coordinate_values(offset=20)).content,
                                  file_name=added[0].file_name.replace("t014459", "t030000"))
        _wait("the revised row", lambda: rows().get(revised.concept_id, {}).get("item_id") == revised.file_name[:-4], dev)
        assert rows()[revised.concept_id]["mean"] == pytest.approx(after[revised.concept_id]["mean"] + 18, abs=1e-3)

        fake_cmr.delete(stored[0].concept_id)
        _wait("the deleted granule's row gone", lambda: stored[0].concept_id not in rows(), dev)
        assert set(rows()) == wanted - {stored[0].concept_id}
        _wait("the status counting 3 rows", lambda: status().get("rows") == {"omdoao3e": 3}, dev)
    finally:
        dev.stop()
