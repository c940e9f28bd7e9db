"""Dagster as a user runs it: the CLI, and the daemon with the CMR sensor switched on."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from .granule_files import make_omi_granule
from .helpers import now_utc, omi_file_name, partition_of, stored_cog, stored_item
from .services import free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env(fake_cmr, storage_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))}
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env.update(
        DAGSTER_HOME=str(home),
        COG_ASSETS_CMR_URL=fake_cmr.url,
        COG_ASSETS_STORAGE=storage_url,
        COG_ASSETS_INSECURE_TESTING_ORIGINS="http://127.0.0.1",
        EARTHDATA_TOKEN=fake_cmr.token,
    )
    return env


def _dagster(*args: str) -> list[str]:
    return [sys.executable, "-m", "dagster", *args]


def _add_recent_omi(fake_cmr, days_ago: int, **extra):
    day = (now_utc() - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
    return fake_cmr.add_granule(
        short_name="OMDOAO3e", version="003", file_name=omi_file_name(day), begin=day,
        end=day + timedelta(days=1) - timedelta(milliseconds=1), content=make_omi_granule().content, **extra,
    )


def test_cli_materializes_a_partition(fake_cmr, tmp_path, local_storage_url, monkeypatch):
    granule = _add_recent_omi(fake_cmr, 3)
    env = _env(fake_cmr, local_storage_url, tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("omdoao3e_granules", [partition_of(granule)])
    completed = subprocess.run(
        _dagster("asset", "materialize", "-m", "cog_assets.definitions",
                 "--select", "omdoao3e/granule,omdoao3e/cog,omdoao3e/stac_item",
                 "--partition", partition_of(granule)),
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert stored_item(Path(local_storage_url[len("file://"):]), "omdoao3e", granule.file_name[:-4]).exists()
    assert fake_cmr.token not in completed.stdout + completed.stderr


def test_daemon_with_sensor_on_materializes_new_granules(fake_cmr, tmp_path, local_storage_url, monkeypatch):
    published = now_utc() - timedelta(days=30)  # before the sensor is switched on
    old = _add_recent_omi(fake_cmr, 60, revision_date=published)  # history: registered, not run
    recent = [_add_recent_omi(fake_cmr, d, revision_date=published) for d in (2, 1)]  # the recent window
    env = _env(fake_cmr, local_storage_url, tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    started = subprocess.run(
        _dagster("sensor", "start", "omdoao3e_cmr_sensor", "-m", "cog_assets.definitions"),
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    with (tmp_path / "dev.log").open("w") as log:
        daemon = subprocess.Popen(
            _dagster("dev", "-m", "cog_assets.definitions", "-h", "127.0.0.1", "-p", str(free_port())),
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    try:
        key = AssetKey(["omdoao3e", "stac_item"])
        wanted = {partition_of(g) for g in recent}
        deadline = time.monotonic() + 240
        done: set[str] = set()
        while time.monotonic() < deadline and done != wanted:
            with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                done = set(instance.get_materialized_partitions(key)) & wanted
                partitions = set(instance.get_dynamic_partitions("omdoao3e_granules"))
            if done != wanted:
                time.sleep(2)  # polling a bounded wait for the daemon, not synchronising threads
        assert done == wanted, (tmp_path / "dev.log").read_text()[-4000:]
        assert partition_of(old) in partitions
        with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            assert partition_of(old) not in instance.get_materialized_partitions(key)
        storage = Path(local_storage_url[len("file://"):])
        for granule in recent:
            assert stored_cog(storage, "omdoao3e", granule.file_name[:-4]).exists()
    finally:
        os.killpg(daemon.pid, signal.SIGINT)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)


def test_bin_platform_starts_without_misleading_warnings(tmp_path):
    """The README's first command: the UI comes up and nothing on the way warns the user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), DAGSTER_PORT=str(free_port()),
               COG_ASSETS_STORAGE=(tmp_path / "out").as_uri(), COG_ASSETS_VENV=str(Path(sys.executable).parents[1]))
    log = tmp_path / "platform.log"
    with log.open("w") as out:
        platform = subprocess.Popen(["bash", str(REPO / "bin" / "platform")], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Serving dagster-webserver" not in log.read_text():
            assert platform.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)  # polling the log of a process we wait for, bounded
    finally:
        os.killpg(platform.pid, signal.SIGINT)
        platform.wait(timeout=60)
    text = log.read_text()
    assert "WARNING" not in text and "Warning" not in text, text[-3000:]
