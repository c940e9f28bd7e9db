"""aoi_sensor and <dataset>/aoi_statistics driven tick by tick, as the daemon drives them:
registration and statuses, incremental syncs, revisions, withdrawals, version changes, bad files."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DeleteDynamicPartitionsRequest,
    SensorResult,
    build_sensor_context,
    materialize,
)

from cog_assets.dataset import AnalysisConfig, DatasetConfig
from cog_assets.defs.aoi_sensor import build_aoi_sensor
from cog_assets.defs.aoi_statistics import build_aoi_statistics
from cog_assets.defs.aois import AoiFolder
from cog_assets.defs.io_manager import CogAssetsIOManager

from .granule_files import make_omi_granule, omi_coordinate_values
from .helpers import Platform, add_omi_days, add_omi_granule

DAY = datetime(2024, 6, 1, tzinfo=timezone.utc)
EUROPE = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
    [[-5.1, 42.2], [20.3, 41.7], [24.8, 55.1], [-4.6, 56.3], [-5.1, 42.2]]]}}
STATS = AssetKey(["omdoao3e", "aoi_statistics"])


class AoiHarness:
    """The omdoao3e chain, its statistics asset and aoi_sensor on one instance and storage."""

    def __init__(self, platform: Platform, dataset: DatasetConfig) -> None:
        self.platform, self.instance = platform, platform.instance
        self.folder = Path(platform.storage_url[len("file://"):]) / "aois"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cursor: str | None = None
        self.use(dataset)

    def use(self, dataset: DatasetConfig) -> None:
        """(Re)build the sensor and asset, as a code-location reload after a YAML edit does."""
        self.sensor = build_aoi_sensor([dataset])
        self.asset = build_aoi_statistics(dataset, AssetKey(["omdoao3e", "cog"]))

    def resources(self) -> dict:
        url = self.platform.storage_url
        return self.platform.resources() | {"aois": AoiFolder(url=self.folder.as_uri()),
                                            "io_manager": CogAssetsIOManager(storage_url=url)}

    def add(self, name: str, content: dict | bytes) -> None:
        (self.folder / name).write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())

    def tick(self) -> SensorResult:
        context = build_sensor_context(instance=self.instance, cursor=self.cursor,
                                       resources={"aois": AoiFolder(url=self.folder.as_uri())})
        result = self.sensor(context)
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            elif isinstance(request, DeleteDynamicPartitionsRequest):
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        self.cursor = result.cursor
        return result

    def sync(self) -> SensorResult:
        """A tick, then the runs it requested (what the daemon would launch)."""
        result = self.tick()
        for request in result.run_requests:
            done = materialize([self.platform.built.chain, self.asset], selection=[STATS],
                               partition_key=request.partition_key, tags=request.tags,
                               resources=self.resources(), instance=self.instance)
            assert done.success
        return result

    def status(self, aoi: str) -> dict:
        return json.loads((self.folder / f"{aoi}.status.json").read_text())

    def rows(self, aoi: str) -> list[dict]:
        path = Path(self.platform.storage_url[len("file://"):]) / "omdoao3e" / "aoi_statistics" / f"{aoi}.parquet"
        return pq.read_table(io.BytesIO(path.read_bytes())).to_pylist()

    def metadata(self, aoi: str) -> dict:
        records = self.instance.fetch_materializations(STATS, limit=50).records
        latest = next(r for r in records if r.partition_key == aoi)
        return {k: v.value for k, v in latest.asset_materialization.metadata.items()}


@pytest.fixture
def harness(datasets, fake_cmr, instance, local_storage_url) -> AoiHarness:
    return AoiHarness(Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance), datasets["omdoao3e"])


def _granule(harness: AoiHarness, day: int, offset: float = 0.0):
    granule = add_omi_granule(harness.platform.cmr, make_omi_granule(omi_coordinate_values(offset=offset)).content,
                              DAY + timedelta(days=day))
    assert harness.platform.run(granule.concept_id).success
    return granule


def test_an_aoi_is_registered_saved_and_kept_in_sync(harness, datasets, fake_cmr):
    granules = [_granule(harness, d, offset=d) for d in range(3)]
    add_omi_days(fake_cmr, datasets["omdoao3e"], DAY - timedelta(days=400), 1)
    harness.instance.add_dynamic_partitions("omdoao3e_granules", ["history-not-materialized"])
    harness.add("europe.geojson", EUROPE)
    first = harness.sync()
    assert harness.instance.get_dynamic_partitions("aois") == ["europe"]
    assert [r.partition_key for r in first.run_requests] == ["europe"]
    assert harness.status("europe")["status"] == "pending"
    harness.tick()
    status = harness.status("europe")
    assert status["status"] == "saved" and status["rows"] == {"omdoao3e": 3}
    rows = harness.rows("europe")
    assert [r["concept_id"] for r in rows] == [g.concept_id for g in granules]
    assert [round(r["mean"] - rows[0]["mean"], 3) for r in rows] == [0, 1, 2]  # the offsets, in data-time order
    assert {r["analysis_version"] for r in rows} == {"1"} and all(r["coverage"] == 1.0 for r in rows)
    assert harness.sync().run_requests == []  # nothing changed: no run

    harness.instance.add_dynamic_partitions("omdoao3e_granules", ["more-history"])
    assert harness.sync().run_requests == []  # registering history is not a change of stored COGs

    new = _granule(harness, 3, offset=3)
    assert len(harness.sync().run_requests) == 1
    meta = harness.metadata("europe")
    assert (meta["dagster/row_count"], meta["rows_computed"], meta["rows_reused"]) == (4, 1, 3)
    assert harness.rows("europe")[-1]["concept_id"] == new.concept_id
    assert "data:image/svg+xml;base64," in meta["mean_over_time"] and len(meta["last_rows"].records) == 4
    harness.tick()
    assert harness.status("europe")["rows"] == {"omdoao3e": 4}

    before = {r["concept_id"]: r for r in harness.rows("europe")}
    revised = fake_cmr.revise(granules[1].concept_id, content=make_omi_granule(omi_coordinate_values(offset=10)).content,
                              file_name=granules[1].file_name.replace("t014459", "t020000"))
    assert harness.platform.run(revised.concept_id).success
    harness.sync()
    after = {r["concept_id"]: r for r in harness.rows("europe")}
    assert after[revised.concept_id]["mean"] == pytest.approx(before[revised.concept_id]["mean"] + 9, abs=1e-3)
    assert after[revised.concept_id]["item_id"] == revised.file_name[:-4]
    assert {k: r["computed_at"] for k, r in after.items() if k != revised.concept_id} == {
        k: r["computed_at"] for k, r in before.items() if k != revised.concept_id}

    harness.instance.delete_dynamic_partition("omdoao3e_granules", harness.platform.key(granules[0].concept_id))  # CMR withdrew it
    harness.sync()
    assert granules[0].concept_id not in {r["concept_id"] for r in harness.rows("europe")}
    assert harness.metadata("europe")["rows_removed"] == 1

    harness.use(datasets["omdoao3e"].model_copy(update={"analysis": AnalysisConfig(version="2")}))
    harness.sync()
    meta = harness.metadata("europe")
    assert (meta["rows_computed"], meta["rows_reused"]) == (3, 0)
    assert {r["analysis_version"] for r in harness.rows("europe")} == {"2"}

    (harness.folder / "europe.geojson").unlink()
    assert harness.sync().run_requests == []
    assert harness.instance.get_dynamic_partitions("aois") == []
    assert harness.status("europe")["status"] == "removed"
    assert len(harness.rows("europe")) == 3  # results kept


BAD_FILES = {
    "truncated.geojson": b'{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0],',
    "point.geojson": {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [2, 48]}},
    "bowtie.geojson": {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]},
    "mercator.geojson": {**EUROPE, "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}},
    "metres.geojson": {"type": "Polygon", "coordinates": [[[2e5, 5e6], [3e5, 5e6], [3e5, 6e6], [2e5, 5e6]]]},
}


def test_malformed_files_are_invalid_with_a_message_and_a_good_one_is_saved(harness):
    _granule(harness, 0)
    for name, content in BAD_FILES.items():
        harness.add(name, content)
    harness.add("good.geojson", EUROPE)
    first = harness.sync()
    assert [r.partition_key for r in first.run_requests] == ["good"]
    assert harness.instance.get_dynamic_partitions("aois") == ["good"]
    for name in BAD_FILES:
        status = harness.status(name[: -len(".geojson")])
        assert status["status"] == "invalid", name
        assert status["message"].startswith(f"{name}: "), status
    assert "is a Point" in harness.status("point")["message"]
    assert "Self-intersection" in harness.status("bowtie")["message"]
    assert "EPSG:3857" in harness.status("mercator")["message"]
    harness.tick()
    assert harness.status("good")["status"] == "saved" and harness.status("good")["rows"] == {"omdoao3e": 1}

    harness.add("point.geojson", EUROPE)  # fixed: registered at the next tick, alone
    fixed = harness.sync()
    assert [r.partition_key for r in fixed.run_requests] == ["point"]
    harness.tick()
    assert harness.status("point")["status"] == "saved"
