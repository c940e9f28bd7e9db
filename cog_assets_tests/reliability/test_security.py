"""Security: secrets stay in environment variables, the token stays with Earthdata hosts,
shared storage holds only real formats, and configuration is parsed safely."""

from __future__ import annotations

import json
import pickle
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from dagster import DagsterInstance, Definitions, asset, materialize
from dagster._serdes import serialize_value

from cog_assets.sources import earthdata as earthdata_module
from cog_assets.defs.assets import build_dataset_assets
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.dataset import DATASETS_DIR, DatasetConfigError, load_dataset
from cog_assets.definitions import build_definitions
from cog_assets.defs.resources import resources_from_env
from cog_assets.sources.earthdata import DownloadError, EarthdataDownloader
from cog_assets.store.local import LocalStorage
from cog_assets.store.s3 import S3Storage

from ..cmr_server import FakeCmr
from ..granule_files import make_omi_granule
from ..helpers import add_omi_granule, chain_resources, failure_messages, partition_of
from ..http_proxy import FaultProxy
from ..services import S3_SECRET

DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _add(cmr: FakeCmr, day: datetime = DAY):
    return add_omi_granule(cmr, make_omi_granule().content, day)


def test_secrets_never_reach_logs_metadata_run_config_or_storage(
    tmp_path, datasets, seaweedfs, stac_api_url, monkeypatch, record
):
    earthdata_token = f"EDL-{uuid.uuid4().hex}-secret"
    stac_token = f"STAC-{uuid.uuid4().hex}-secret"
    prefix = f"secrets-{uuid.uuid4().hex[:8]}"
    with FakeCmr(token=earthdata_token) as cmr, FaultProxy(stac_api_url) as proxy:
        granule = _add(cmr)
        for key, value in {
            "COG_ASSETS_CMR_URL": cmr.url,
            "EARTHDATA_TOKEN": earthdata_token,
            "COG_ASSETS_INSECURE_TESTING_ORIGINS": "http://127.0.0.1",
            "COG_ASSETS_STORAGE": f"s3://{seaweedfs.bucket}/{prefix}",
            "COG_ASSETS_STAC_API_URL": proxy.url,
            "COG_ASSETS_STAC_API_TOKEN": stac_token,
            **seaweedfs.env(),
        }.items():
            monkeypatch.setenv(key, value)
        built = build_dataset_assets(datasets["omdoao3e"])
        home = tmp_path / "dagster_home"
        home.mkdir()
        with DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
            instance.add_dynamic_partitions("omdoao3e_granules", [partition_of(granule)])
            resources = resources_from_env()  # the platform's own wiring: secrets as EnvVar
            collection = materialize([built.stac_collection], resources=resources, instance=instance)
            chain = materialize(
                [built.chain], partition_key=partition_of(granule),
                resources=resources, instance=instance, raise_on_error=False,
            )
            assert collection.success and chain.success, failure_messages(chain)
            # the secrets were really in use
            assert any(r["headers"].get("Authorization") == f"Bearer {earthdata_token}" for r in cmr.requests)
            assert any(r["headers"].get("Authorization") == f"Bearer {stac_token}" for r in proxy.requests)

            secrets = {"EARTHDATA_TOKEN": earthdata_token, "COG_ASSETS_STAC_API_TOKEN": stac_token, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
            places: dict[str, bytes] = {}
            for run_id in (collection.run_id, chain.run_id):
                run = instance.get_run_by_id(run_id)
                places[f"run config {run_id}"] = json.dumps(run.run_config).encode()
                places[f"run tags {run_id}"] = json.dumps(run.tags).encode()
                places[f"event log {run_id}"] = "\n".join(serialize_value(e) for e in instance.all_logs(run_id)).encode()
        for path in home.rglob("*"):  # SQLite run/event storage, compute logs, everything Dagster wrote
            if path.is_file():
                places[f"instance file {path.relative_to(home)}"] = path.read_bytes()
        storage = S3Storage(seaweedfs.client(), seaweedfs.bucket, prefix)
        keys = storage.list_keys("")
        assert any(k.endswith(".tif") for k in keys) and any(k.endswith(".he5") for k in keys)
        for key in keys:
            places[f"stored object {key}"] = storage.get_bytes(key)

    found = [f"{name} in {where}" for where, blob in places.items() for name, secret in secrets.items() if secret.encode() in blob]
    assert found == []
    scanned = [w for w in places if w.startswith("instance file")]
    assert any(w.endswith(".db") for w in scanned) and any("compute_logs" in w for w in scanned)
    record("security: Earthdata token, STAC token, S3 secret never logged or stored",
           f"scanned {len(places)} places (run config, tags, event logs, instance files, every stored object): 0 hits",
           secrets_found=len(found))


def test_token_is_not_sent_to_another_host_after_a_redirect(fake_cmr, datasets, tmp_path, monkeypatch, record):
    monkeypatch.setattr(earthdata_module, "wait", lambda seconds: None)
    granule = _add(fake_cmr)
    record_ = CmrClient(base_url=fake_cmr.url).granule(datasets["omdoao3e"].cmr, granule.concept_id)
    target = fake_cmr.file_url(granule, host=fake_cmr.alias_url)  # 'localhost': not an Earthdata host
    redirecting = record_.model_copy(update={"data_url": f"{fake_cmr.url}/redirect/?to={quote(target, safe='')}"})
    downloader = EarthdataDownloader(token=fake_cmr.token, insecure_testing_origins=["http://127.0.0.1"])
    with pytest.raises(DownloadError, match="localhost answered HTTP 401"):
        downloader.download(redirecting, tmp_path)
    hops = [r for r in fake_cmr.requests if r["path"].startswith(("/redirect/", "/data/"))]
    assert hops[0]["headers"].get("Authorization") == f"Bearer {fake_cmr.token}"  # 127.0.0.1 may
    leaked = [r for r in hops if r["host"].startswith("localhost") and "Authorization" in r["headers"]]
    assert leaked == [] and list(tmp_path.iterdir()) == []
    record("security: token not sent to a non-Earthdata host after a redirect",
           "redirect target got no Authorization header; download failed with its 401", secrets_found=len(leaked))


class _Pickled(AssertionError):
    """Raised by the guard: something called pickle."""


def _refuse_pickle(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise _Pickled("something called pickle")

    for name in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)


def _code_location(tmp_path: Path, resources: dict) -> Definitions:
    """The platform's own code location (definitions.py), for the OMI dataset alone."""
    datasets_dir = tmp_path / "datasets"
    datasets_dir.mkdir()
    shutil.copy(DATASETS_DIR / "omdoao3e.yaml", datasets_dir)
    return build_definitions(resources=resources, datasets_dir=datasets_dir)


def test_no_asset_or_check_of_the_code_location_pickles(fake_cmr, tmp_path, local_storage_url, monkeypatch, record):
    """Every asset and check of the code location, materialized with pickle refused both
    ways, stores only HDF5, GeoTIFF and JSON. The guard is shown to catch Dagster's default
    IO manager (which pickles), so the test fails as soon as anything starts pickling."""
    granule = _add(fake_cmr)
    from cog_assets.defs.aois import AoiFolder
    from cog_assets.defs.io_manager import CogAssetsIOManager

    resources = chain_resources(fake_cmr, local_storage_url) | {
        "aois": AoiFolder(url=f"{local_storage_url}/aois"), "io_manager": CogAssetsIOManager(storage_url=local_storage_url)
    }
    defs = _code_location(tmp_path, resources)
    aoi = Path(local_storage_url[len("file://"):]) / "aois" / "box.geojson"
    aoi.parent.mkdir(parents=True)
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]}))
    assets, checks = list(defs.assets or []), list(defs.asset_checks or [])
    assert {a.partitions_def is None for a in assets} == {True, False} and checks

    @asset
    def returns_a_value() -> dict:
        return {"picklable": True}

    with DagsterInstance.ephemeral() as instance:
        _refuse_pickle(monkeypatch)
        control = materialize([returns_a_value], instance=instance, raise_on_error=False)
        instance.add_dynamic_partitions("omdoao3e_granules", [partition_of(granule)])
        resources = dict(defs.resources or {})
        unpartitioned = materialize(
            [a for a in assets if a.partitions_def is None] + checks, resources=resources, instance=instance,
            raise_on_error=False,
        )
        by_granule = [a for a in assets if a.partitions_def is not None and a.partitions_def.name == "omdoao3e_granules"]
        partitioned = materialize(
            by_granule, partition_key=partition_of(granule), resources=resources, instance=instance, raise_on_error=False,
        )
        instance.add_dynamic_partitions("aois", ["box"])
        by_aoi = [a for a in assets if a.partitions_def is not None and a.partitions_def.name == "aois"]
        statistics = materialize(
            [*by_granule, *by_aoi], selection=by_aoi, partition_key="box", resources=resources, instance=instance,
            raise_on_error=False,
        )
        monkeypatch.undo()
    assert not control.success and "something called pickle" in failure_messages(control)[0]
    assert unpartitioned.success and partitioned.success, failure_messages(unpartitioned) + failure_messages(partitioned)
    assert statistics.success, failure_messages(statistics)
    assert len(partitioned.get_asset_materialization_events()) == 3
    storage = LocalStorage(Path(local_storage_url[len("file://"):]))
    kinds: dict[str, int] = {}
    for key in storage.list_keys(""):
        data = storage.get_bytes(key)
        if key.endswith(".he5"):
            assert data.startswith(HDF5_SIGNATURE), key
        elif key.endswith(".tif"):
            assert data[:4] in (b"II*\x00", b"II+\x00"), key
        elif key.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n", key
        elif key.endswith(".parquet"):
            assert data[:4] == data[-4:] == b"PAR1", key
        else:
            assert key.endswith((".json", ".geojson")), key
            json.loads(data)
        kinds[key.rsplit(".", 1)[-1]] = kinds.get(key.rsplit(".", 1)[-1], 0) + 1
    # granule, COG, thumbnail, AOI, its statistics; JSON: CMR record (staged and live), item,
    # collection, root catalog (written before the item existed: no year/month catalogs yet)
    assert kinds == {"he5": 1, "tif": 1, "png": 1, "geojson": 1, "parquet": 1, "json": 5}
    record("security: nothing pickled or unpickled",
           "every asset and check of the code location ran with pickle refused (the guard catches "
           "Dagster's pickling IO manager); storage holds only HDF5, GeoTIFF, PNG, Parquet and JSON")


def test_dataset_yaml_is_parsed_safely(tmp_path, record):
    marker = tmp_path / "pwned"
    path = tmp_path / "omdoao3e.yaml"
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(DatasetConfigError, match=r"omdoao3e.yaml is not valid YAML"):
        load_dataset(path)
    assert not marker.exists()
    record("security: dataset YAML loaded safely", "a !!python tag is refused as invalid YAML, never executed")
