"""The IO manager: outputs stored as Parquet/JSON (never pickled), chain outputs loaded as COG
references and STAC items, the README's own-asset example run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pystac
import pytest
import rasterio
from dagster import (
    AllPartitionMapping,
    AssetIn,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from cog_assets.defs.io_manager import CogAssetsIOManager
from cog_assets.store import local as objects

from .granule_files import make_omi_granule, omi_coordinate_values
from .helpers import Platform, add_omi_granule, partition_of

REPO = Path(__file__).resolve().parents[1]
DAY = datetime(2024, 6, 1, tzinfo=timezone.utc)


def _local(url: str) -> Path:
    return Path(url[len("file://") :])


def test_outputs_are_parquet_or_json_with_uri_size_and_checksum(instance, local_storage_url):
    @asset
    def table() -> pa.Table:
        return pa.table({"x": [1, 2]})

    @asset
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"y": [3.5]})

    @asset
    def item() -> pystac.Item:
        return pystac.Item("i1", None, None, datetime(2024, 1, 1), {})

    @asset
    def settings() -> dict:
        return {"a": 1}

    @asset
    def reader(table: pa.Table, frame: pd.DataFrame, item: pystac.Item, settings: dict) -> dict:
        return {"x": table.column("x").to_pylist(), "y": frame["y"].tolist(), "item": item.id, **settings}

    result = materialize([table, frame, item, settings, reader], instance=instance,
                         resources={"io_manager": CogAssetsIOManager(storage_url=local_storage_url)})
    assert result.success
    root = _local(local_storage_url)
    assert json.loads((root / "reader.json").read_text()) == {"x": [1, 2], "y": [3.5], "item": "i1", "a": 1}
    assert (root / "table.parquet").read_bytes()[:4] == b"PAR1" and (root / "frame.parquet").exists()
    stored = json.loads((root / "item.json").read_text())
    assert stored["type"] == "Feature" and stored["id"] == "i1"
    event = instance.get_latest_materialization_event(AssetKey("table")).asset_materialization
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["uri"] == (root / "table.parquet").as_uri()
    assert meta["size_bytes"] == (root / "table.parquet").stat().st_size
    assert meta["sha256"] == objects.sha256_of(root / "table.parquet")
    assert not list(root.rglob("*.partial")) and not list(root.rglob("*.pkl"))


def test_unsupported_values_are_refused_never_pickled(instance, local_storage_url):
    @asset
    def opaque() -> object:
        return object()

    result = materialize([opaque], instance=instance, raise_on_error=False,
                         resources={"io_manager": CogAssetsIOManager(storage_url=local_storage_url)})
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.cause.message
    assert "opaque: the output is a builtins.object" in message and "never pickles" in message
    assert not _local(local_storage_url).exists() or not any(_local(local_storage_url).rglob("*"))


def test_a_run_over_several_partitions_stores_one_object_each(instance, local_storage_url):
    letters = StaticPartitionsDefinition(["a", "b", "c"])

    @asset(partitions_def=letters)
    def per_letter(context) -> dict:
        return {key: {"letter": key} for key in context.partition_keys}

    @asset(ins={"per_letter": AssetIn(partition_mapping=AllPartitionMapping())})
    def together(per_letter: dict) -> dict:
        return per_letter

    tags = {"dagster/asset_partition_range_start": "a", "dagster/asset_partition_range_end": "c"}
    manager = CogAssetsIOManager(storage_url=local_storage_url)
    assert materialize([per_letter], instance=instance, tags=tags, resources={"io_manager": manager}).success
    assert materialize([per_letter, together], selection=[together], instance=instance,
                       resources={"io_manager": manager}).success
    root = _local(local_storage_url)
    assert json.loads((root / "together.json").read_text()) == {k: {"letter": k} for k in "abc"}
    records = instance.fetch_materializations(AssetKey("per_letter"), limit=10).records
    uris = {r.partition_key: r.asset_materialization.metadata["uri"].value for r in records}
    assert uris == {k: (root / "per_letter" / f"{k}.json").as_uri() for k in "abc"}


def test_seven_thousand_cog_references_without_reading_storage(instance, local_storage_url, monkeypatch):
    """The history comes from the event log: no GET per COG (here: no storage read at all)."""
    keys = [f"2004-10-01_G{n:07d}-GES_DISC" for n in range(7000)]
    granules = StaticPartitionsDefinition(keys)
    cog_key = AssetKey(["omdoao3e", "cog"])
    for n, key in enumerate(keys):
        instance.report_runless_asset_event(AssetMaterialization(cog_key, partition=key, metadata={
            "uri": f"s3://bucket/omdoao3e/cogs/{n}/rev.tif", "item_id": f"item{n}", "sha256": f"{n:064x}",
            "datetime": (DAY + timedelta(days=n)).isoformat(), "cmr_concept_id": key.split("_")[1]}))

    @asset(key=cog_key, partitions_def=granules)
    def cog() -> None: ...

    @asset(ins={"cogs": AssetIn(key=cog_key, partition_mapping=AllPartitionMapping())})
    def summary(cogs: dict) -> dict:
        return {"n": len(cogs), "last": cogs[keys[-1]].uri, "when": cogs[keys[0]].datetime.isoformat()}

    reads = []
    monkeypatch.setattr(objects.LocalStorage, "get_bytes", lambda self, key: reads.append(key) or b"")
    monkeypatch.setattr(objects.LocalStorage, "exists", lambda self, key: reads.append(key) or False)
    manager = CogAssetsIOManager(storage_url=local_storage_url)
    result = materialize([cog, summary], selection=[summary], instance=instance, resources={"io_manager": manager})
    assert result.success
    assert result.output_for_node("summary") == {
        "n": 7000, "last": "s3://bucket/omdoao3e/cogs/6999/rev.tif", "when": DAY.isoformat()}
    assert reads == []


@pytest.fixture
def omi_platform(datasets, fake_cmr, instance, local_storage_url):
    return Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)


def test_stac_items_and_cogs_load_for_one_partition_and_for_several(omi_platform, instance):
    platform = omi_platform
    granules = [add_omi_granule(platform.cmr, make_omi_granule(omi_coordinate_values(offset=d)).content,
                                DAY + timedelta(days=d)) for d in range(2)]
    for granule in granules:
        assert platform.run(granule.concept_id).success
    cog_key, item_key = AssetKey(["omdoao3e", "cog"]), AssetKey(["omdoao3e", "stac_item"])
    partitions = platform.built.partitions_def

    @asset(partitions_def=partitions, ins={"cog": AssetIn(key=cog_key), "item": AssetIn(key=item_key)})
    def one(cog, item: pystac.Item) -> dict:
        return {"uri": cog.uri, "item": item.id, "cog_item": cog.item_id, "href": item.assets["cog_default"].href}

    @asset(ins={"cogs": AssetIn(key=cog_key, partition_mapping=AllPartitionMapping()),
                "items": AssetIn(key=item_key, partition_mapping=AllPartitionMapping())})
    def many(cogs: dict, items: dict) -> dict:
        return {k: [c.item_id, c.datetime.isoformat(), items[k].datetime.isoformat()] for k, c in cogs.items()}

    resources = platform.resources() | {"io_manager": CogAssetsIOManager(storage_url=platform.storage_url)}
    first = granules[0]
    result = materialize([platform.built.chain, one], selection=[one], partition_key=platform.key(first.concept_id),
                         instance=instance, resources=resources)
    got = result.output_for_node("one")
    assert got["item"] == got["cog_item"] == first.file_name[:-4]
    with rasterio.open(got["uri"]) as src:  # a plain path, opened as the user would
        assert src.crs.is_geographic and src.shape == (720, 1440)
    result = materialize([platform.built.chain, many], selection=[many], instance=instance, resources=resources)
    assert result.output_for_node("many") == {
        platform.key(g.concept_id): [g.file_name[:-4], (DAY + timedelta(days=d)).isoformat(), (DAY + timedelta(days=d)).isoformat()]
        for d, g in enumerate(granules)
    }


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    example = next(b for b in blocks if "def ozone_peak" in b)
    assert len(example.strip().splitlines()) <= 16
    return example


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "seaweedfs"])
def test_the_readme_example_runs_as_written(backend, request, datasets, fake_cmr, tmp_path, monkeypatch):
    """README's own asset, run by the dagster CLI, reads a stored COG on a folder or on S3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_", "AWS_"))}
    s3 = None
    storage_url = (tmp_path / "storage").as_uri()
    if backend == "seaweedfs":
        s3 = request.getfixturevalue("seaweedfs")
        storage_url = request.getfixturevalue("s3_prefix_url")
        env.update(s3.env())
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env.update(DAGSTER_HOME=str(home), COG_ASSETS_STORAGE=storage_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # dagster.yaml refers to it
    values = omi_coordinate_values()
    granule = add_omi_granule(fake_cmr, make_omi_granule(values).content, DAY)
    with DagsterInstance.from_config(str(home)) as instance:
        assert Platform(datasets["omdoao3e"], fake_cmr, storage_url, instance, s3=s3).run(granule.concept_id).success
    (tmp_path / "my_assets.py").write_text(_readme_example())
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-f", "my_assets.py", "--select", "ozone_peak",
         "--partition", partition_of(granule)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    key = f"ozone_peak/{partition_of(granule)}.json"
    if s3 is None:
        stored = json.loads((tmp_path / "storage" / key).read_text())
    else:
        bucket, prefix = storage_url[len("s3://"):].split("/", 1)
        stored = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read())
    assert stored == {"item": granule.file_name[:-4], "time": DAY.isoformat(),
                      "peak_du": pytest.approx(float(values[values > 0].max()))}
