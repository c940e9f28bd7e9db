"""Faults: services going away mid-work. Retries converge to a clean run's outputs; no granule
is lost and nothing partial sits at a final key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cog_assets.store.layout import granule_key
from cog_assets.store.local import LocalStorage
from cog_assets.store.s3 import S3Storage

from ..cmr_server import Fault, FakeCmr
from ..granule_files import make_omi_granule, omi_values
from ..helpers import Platform, failure_messages, omi_file_name, partition_of, stored_cog, stored_item
from ..services import start_seaweedfs
from .audit import partial_objects

DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)


def _add_days(cmr: FakeCmr, days: int):
    return [
        cmr.add_granule(
            short_name="OMDOAO3e", version="003", file_name=omi_file_name(DAY + timedelta(days=n)),
            begin=DAY + timedelta(days=n), end=DAY + timedelta(days=n + 1) - timedelta(milliseconds=1),
            content=make_omi_granule(omi_values(seed=n)).content,
        )
        for n in range(days)
    ]


@pytest.fixture
def own_seaweedfs(tmp_path, monkeypatch):
    """A SeaweedFS this test may stop and start (the session's one stays up for the others)."""
    server = start_seaweedfs(tmp_path / "weed")
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


def test_s3_stopped_mid_backfill_then_restarted(fake_cmr, datasets, instance, own_seaweedfs, record):
    granules = _add_days(fake_cmr, 6)
    url = f"s3://{own_seaweedfs.bucket}/backfill"
    platform = Platform(datasets["omdoao3e"], fake_cmr, url, instance, own_seaweedfs, s3_max_attempts=2)
    third = granules[2].file_name
    fake_cmr.on_download = lambda path: own_seaweedfs.stop() if path.endswith(third) else None

    outcomes = {g.concept_id: platform.run(g.concept_id) for g in granules}
    succeeded = [cid for cid, r in outcomes.items() if r.success]
    failed = [cid for cid, r in outcomes.items() if not r.success]
    assert succeeded == [g.concept_id for g in granules[:2]] and len(failed) == 4
    for cid in failed:
        (message,) = failure_messages(outcomes[cid])
        assert f"s3://{own_seaweedfs.bucket}/backfill/omdoao3e/" in message or "Could not connect" in message, message

    fake_cmr.on_download = None
    own_seaweedfs.start()
    for cid in failed:  # "re-execute failed" from the UI, partition by partition
        retried = platform.run(cid)
        assert retried.success, failure_messages(retried)
    storage = S3Storage(own_seaweedfs.client(), own_seaweedfs.bucket, "backfill")
    items = storage.list_keys("omdoao3e/items/")
    lost = len(granules) - len(items)
    partial = partial_objects(storage, "omdoao3e")
    assert lost == 0 and partial == []
    record("fault: S3 server stopped mid-backfill, then restarted",
           f"{len(failed)} partitions failed naming the S3 object; retried after restart: all {len(granules)} materialized",
           granules_lost=lost, partial_objects=len(partial))


_KILL_DURING_COG_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from dagster import DagsterInstance, materialize
    from cog_assets.defs.assets import build_dataset_assets
    from cog_assets.dataset import load_datasets
    from cog_assets.store.local import LocalStorage
    from cog_assets_tests.helpers import chain_resources

    class Cmr:  # what chain_resources reads from the test's CMR server
        url, token = sys.argv[1], sys.argv[2]

    original = LocalStorage._commit

    def dying(self, write, key):
        if not key.endswith(".tif"):
            return original(self, write, key)
        def half_then_die(temp):
            write(temp)
            data = temp.read_bytes()
            temp.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)  # the run worker dies mid-write
        return original(self, half_then_die, key)

    LocalStorage._commit = dying
    dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
    built = build_dataset_assets(dataset)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(dataset.partitions_name, [sys.argv[4]])
        materialize([built.chain], partition_key=sys.argv[4],
                    resources=chain_resources(Cmr, sys.argv[3]), instance=instance)
    """
)


def _normalized(root: Path, item_id: str) -> tuple[bytes, dict]:
    item = json.loads(stored_item(root, "omdoao3e", item_id).read_text())
    for asset in item["assets"].values():
        asset["href"] = asset["href"].replace(root.as_uri(), "ROOT")
    return stored_cog(root, "omdoao3e", item_id).read_bytes(), item


def test_worker_killed_mid_write_then_rerun_matches_a_clean_run(fake_cmr, datasets, instance, tmp_path, record):
    (granule,) = _add_days(fake_cmr, 1)
    item_id = granule.file_name[:-4]
    killed_root = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    died = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_COG_WRITE, fake_cmr.url, fake_cmr.token, killed_root.as_uri(), partition_of(granule)],
        env=env, capture_output=True, timeout=300,
    )
    assert died.returncode == -9, died.stderr.decode()[-2000:]
    storage = LocalStorage(killed_root)
    assert storage.list_keys("omdoao3e/cogs/") == [] and storage.list_keys("omdoao3e/items/") == []
    leftovers = [p.name for p in (killed_root / "omdoao3e" / "cogs").rglob("*") if p.is_file()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial")  # a hidden temp name, never final
    assert partial_objects(storage, "omdoao3e") == []  # the staged granule is complete and verified

    platform = Platform(datasets["omdoao3e"], fake_cmr, killed_root.as_uri(), instance)
    assert platform.run(granule.concept_id).success
    clean_root = tmp_path / "clean"
    assert Platform(datasets["omdoao3e"], fake_cmr, clean_root.as_uri(), instance).run(granule.concept_id).success
    assert _normalized(killed_root, item_id) == _normalized(clean_root, item_id)
    partial = partial_objects(storage, "omdoao3e")
    assert partial == []
    record("fault: run worker killed (SIGKILL) mid-write of the COG",
           "nothing at the final key (only a hidden .partial temp); re-run byte-identical to a clean run",
           partial_objects=len(partial))


def test_download_host_503_then_200(fake_cmr, datasets, instance, local_storage_url, record, monkeypatch):
    from cog_assets.sources import earthdata as earthdata

    waits: list[float] = []
    monkeypatch.setattr(earthdata, "wait", waits.append)
    (granule,) = _add_days(fake_cmr, 1)
    fake_cmr.fail_download(granule, Fault(status=503), Fault(status=503))
    result = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance).run(granule.concept_id)
    assert result.success, failure_messages(result)
    assert len(waits) == 2
    stored = LocalStorage(Path(local_storage_url[len("file://"):]))
    assert stored.get_bytes(granule_key("omdoao3e", granule.concept_id, 1, granule.file_name)) == fake_cmr.file_for(granule.data_path)
    assert partial_objects(stored, "omdoao3e") == []
    record("fault: download host answers 503, 503, then 200", "retried with backoff (2 waits); materialized")


def test_stac_api_down_while_publishing_then_back(fake_cmr, datasets, instance, local_storage_url, stac_api_url, record):
    import httpx

    from cog_assets.stac.api import StacApi

    from ..services import free_port

    granules = _add_days(fake_cmr, 3)
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance, stac_api_url=stac_api_url)
    down = StacApi(url=f"http://127.0.0.1:{free_port()}", max_attempts=2, backoff_seconds=0.01)
    for granule in granules:
        result = platform.run(granule.concept_id, stac_api=down)
        assert not result.success
        (message,) = failure_messages(result)
        assert "failed 2 times" in message and "stays in storage" in message
    catalog = platform.archive()
    assert sorted(catalog.item_ids("omdoao3e")) == sorted(g.file_name[:-4] for g in granules)

    assert platform.republish().success  # the API is back
    published = httpx.get(f"{stac_api_url}/collections/omdoao3e/items", timeout=30).json()["features"]
    assert sorted(i["id"] for i in published) == sorted(catalog.item_ids("omdoao3e"))
    for granule in granules:  # retrying the failed partitions converges, without duplicates
        assert platform.run(granule.concept_id).success
        assert platform.metadata(granule.concept_id)["stac_api"] == "skipped"
    assert platform.check().passed
    lost = len(granules) - len(published)
    partial = partial_objects(catalog.storage, "omdoao3e")
    assert lost == 0 and partial == []
    record("fault: STAC API down while items are published",
           "partitions failed after bounded retries, items kept in storage; republish delivered all 3; retries skip",
           granules_lost=lost, partial_objects=len(partial))
