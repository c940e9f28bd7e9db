"""Bad input: each case ends with its partition failed (cause named) or flagged, never lost,
and nothing incomplete at a final key."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey

from cog_assets.dataset import DatasetConfigError, load_datasets
from cog_assets.defs.partitions import GRANULE_KEY
from cog_assets.store.local import LocalStorage

from ..cmr_server import Fault, FakeCmr
from ..granule_files import SyntheticGranule, make_omi_granule, omi_values
from ..helpers import add_omi_granule, Platform, SensorHarness, failure_messages, omi_file_name
from .audit import partial_objects

DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)
FILL = np.float32(-1.2676506e30)


def _add(cmr: FakeCmr, granule: SyntheticGranule, day: datetime = DAY, **extra):
    return add_omi_granule(cmr, granule.content, day, **extra)


def _storage(url: str) -> LocalStorage:
    return LocalStorage(Path(url[len("file://"):]))


CHAIN_CASES = {
    # case: (how to break it, the cause the failure must name)
    "truncated download": ("truncated", r"received \d+ bytes but CMR declares \d+ \(truncated"),
    "checksum mismatch": ("flipped_byte", r"md5 checksum mismatch: expected [0-9a-f]{32} \(from CMR\), got [0-9a-f]{32}"),
    "larger than CMR declared": ("oversize", r"more than the \d+ bytes CMR declared; stopped reading"),
    "HDF5 without the configured variable": ("missing_variable", r"variable '/HDFEOS/GRIDS/ColumnAmountO3/Data Fields/ColumnAmountO3' not found.*Fix reader.variable"),
    "variable shape contradicts grid metadata": ("shape_mismatch", r"has shape \(720, 720\) but the grid metadata .* implies \(720, 1440\)"),
    "not an HDF5 file": ("corrupt", r"is not a readable HDF5 file.*corrupt or truncated"),
    "CMR item without a GET DATA URL": ("no_data_url", r"has no usable 'GET DATA' URL"),
    "expired Earthdata token (401)": ("unauthorized", r"answered HTTP 401.*token is missing, expired or invalid.*EULA"),
}


@pytest.mark.parametrize("case", list(CHAIN_CASES))
def test_bad_granule_fails_alone_with_its_cause(case, fake_cmr, datasets, instance, local_storage_url, record, monkeypatch):
    from cog_assets.sources import earthdata as earthdata

    monkeypatch.setattr(earthdata, "wait", lambda seconds: None)
    how, cause = CHAIN_CASES[case]
    good = make_omi_granule()
    token = "default"
    neighbour = _add(fake_cmr, good, DAY + timedelta(days=1))
    if how == "missing_variable":
        bad = _add(fake_cmr, make_omi_granule(variable_name="Other"))
    elif how == "shape_mismatch":
        bad = _add(fake_cmr, make_omi_granule(omi_values()[:, :720].copy()))
    elif how == "corrupt":
        bad = _add(fake_cmr, SyntheticGranule(b"\x89HDF\r\n" + bytes(range(256)) * 100, np.zeros(1), 0.0))
    elif how == "no_data_url":
        bad = _add(fake_cmr, good, omit_data_url=True)
    else:
        bad = _add(fake_cmr, good)
        if how == "truncated":
            fake_cmr.set_file(bad, good.content[:-100])
        elif how == "flipped_byte":
            fake_cmr.set_file(bad, good.content[:-1] + bytes([good.content[-1] ^ 1]))
        elif how == "oversize":
            fake_cmr.set_file(bad, good.content + b"\0" * (4 << 20))
        elif how == "unauthorized":
            token = "expired-token"
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)
    failed = platform.run(bad.concept_id, earthdata=_downloader(fake_cmr, token))
    assert not failed.success
    (message,) = failure_messages(failed)
    assert re.search(cause, message, re.S), message
    assert bad.concept_id in message or bad.file_name in message  # which granule
    neighbour_run = platform.run(neighbour.concept_id)
    assert neighbour_run.success, failure_messages(neighbour_run)

    storage = _storage(local_storage_url)
    items = storage.list_keys("omdoao3e/items/")
    assert items == [f"omdoao3e/items/{neighbour.begin:%Y/%m}/{neighbour.file_name[:-4]}.json"]  # the bad one has nothing final
    partial = partial_objects(storage, "omdoao3e")
    assert partial == []
    record(f"bad input: {case}", "its partition failed naming granule and cause; neighbour materialized",
           partial_objects=len(partial))


def _downloader(cmr: FakeCmr, token: str):
    from cog_assets.sources.earthdata import EarthdataDownloader

    return EarthdataDownloader(
        token=cmr.token if token == "default" else token, insecure_testing_origins=["http://127.0.0.1"], backoff_seconds=0.0
    )


def test_all_fill_granule_is_a_valid_cog_flagged_in_metadata(fake_cmr, datasets, instance, local_storage_url, record):
    granule = _add(fake_cmr, make_omi_granule(np.full((720, 1440), FILL, dtype=np.float32)))
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)
    result = platform.run(granule.concept_id)
    assert result.success, failure_messages(result)
    cog = instance.get_latest_materialization_event(AssetKey(["omdoao3e", "cog"])).asset_materialization.metadata
    assert cog["valid_fraction"].value == 0 and cog["valid_pixels"].value == 0
    warnings = [
        e.message for e in instance.all_logs(result.run_id)
        if e.level >= 30 and "every pixel" in (e.message or "")
    ]
    assert warnings and granule.concept_id in warnings[0]
    assert partial_objects(_storage(local_storage_url), "omdoao3e") == []
    record("bad input: all-fill granule", "materialized: valid all-nodata COG, valid_fraction 0, warning logged")


def _tick_fails_then_recovers(fake_cmr, datasets, instance, faults, match, monkeypatch):
    from cog_assets.sources.cmr import client as cmr_module
    from cog_assets.defs.assets import build_dataset_assets
    from cog_assets.sources.cmr.client import CmrError
    from ..helpers import sensor_for

    monkeypatch.setattr(cmr_module, "wait", lambda seconds: None)
    omi = datasets["omdoao3e"]
    build_dataset_assets(omi)
    harness = SensorHarness(
        sensor_for(omi),
        fake_cmr.url, instance, page_size=10,
    )
    for day in range(25):
        fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=omi_file_name(DAY + timedelta(days=day)),
                             begin=DAY + timedelta(days=day), end=DAY + timedelta(days=day, hours=23))
    harness.tick()
    before = harness.cursor
    for day in range(25, 40):
        fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=omi_file_name(DAY + timedelta(days=day)),
                             begin=DAY + timedelta(days=day), end=DAY + timedelta(days=day, hours=23))
    fake_cmr.fail_search(*faults)
    with pytest.raises(CmrError, match=match):
        harness.tick()
    assert harness.cursor == before
    harness.tick()
    assert sorted(k.split("_", 1)[1] for k in harness.added) == sorted(fake_cmr._granules)  # nothing skipped, nothing twice
    assert len(harness.added) == len(set(harness.added)) == 40
    return 40 - len(set(harness.added))


@pytest.mark.parametrize(
    ("case", "faults", "match"),
    [
        ("bad input: malformed CMR JSON", [Fault(status=200, body=b'{"hits": 3, "items": [')], r"not a granules.umm_json result"),
        ("bad input: CMR partial results (CMR-Timed-Out)", [Fault(status=200, timed_out=True)], r"timed out .* partial results"),
        ("fault: CMR 429/500/timeouts during a tick", [Fault(status=429, retry_after="1"), Fault(status=500), Fault(status=504), Fault(status=503), Fault(status=502)], r"failed 5 times"),
    ],
)
def test_cmr_trouble_during_a_tick_keeps_the_cursor(case, faults, match, fake_cmr, datasets, instance, record, monkeypatch):
    lost = _tick_fails_then_recovers(fake_cmr, datasets, instance, faults, match, monkeypatch)
    record(case, "tick failed with the cause, cursor unchanged; next tick registered all 40 exactly once",
           granules_lost=lost)


def test_broken_dataset_yaml_names_the_file_and_field(tmp_path, record):
    shipped = Path(__file__).resolve().parents[2] / "cog_assets" / "datasets" / "omdoao3e.yaml"
    text = shipped.read_text().replace('version: "003"', "version: [3]")
    (tmp_path / "omdoao3e.yaml").write_text(text)
    with pytest.raises(DatasetConfigError, match=r"(?s)omdoao3e.yaml.*field .cmr.version.: Input should be a valid string"):
        load_datasets(tmp_path)
    record("bad input: broken dataset YAML", "definitions refuse to load, naming the file, the field and the fix")


HOSTILE_FILE_NAMES = ["../../escape.he5", "a,b.he5", "with space.he5", "ünïcödé.he5", "sub%2Fdir.he5", "..he5"]
HOSTILE_CONCEPT_IDS = ["G1,2-GES_DISC", "G../../x-GES_DISC", "G 1-GES_DISC", "Gü1-GES_DISC"]


def test_hostile_names_never_escape_storage_or_become_partition_keys(fake_cmr, datasets, instance, tmp_path, record):
    omi = datasets["omdoao3e"]
    good = make_omi_granule()
    storage_root = tmp_path / "root" / "storage"
    for n, name in enumerate(HOSTILE_FILE_NAMES):
        _add(fake_cmr, good, DAY + timedelta(days=n), file_name=name)
    for n, concept_id in enumerate(HOSTILE_CONCEPT_IDS):
        _add(fake_cmr, good, DAY + timedelta(days=20 + n), concept_id=concept_id)
    from cog_assets.defs.assets import build_dataset_assets
    from ..helpers import sensor_for

    build_dataset_assets(omi)
    harness = SensorHarness(
        sensor_for(omi), fake_cmr.url, instance
    )
    harness.tick()
    keys = instance.get_dynamic_partitions("omdoao3e_granules")
    assert len(keys) == len(HOSTILE_FILE_NAMES)  # hostile concept-ids are skipped, with a warning
    assert all(GRANULE_KEY.match(k) and "," not in k for k in keys)

    platform = Platform(omi, fake_cmr, storage_root.as_uri(), instance)
    outcomes = {}
    for key in keys:
        result = platform.run(key)
        concept_id = key.split("_", 1)[1]
        outcomes[fake_cmr.granule(concept_id).file_name] = "stored" if result.success else failure_messages(result)[0]
        assert result.success or f"granule {concept_id}" in outcomes[fake_cmr.granule(concept_id).file_name]
    # every file landed inside the storage folder, or the partition failed saying why
    outside = [p for p in (tmp_path / "root").rglob("*") if storage_root not in p.parents and p != storage_root]
    assert outside == []
    assert "not a plain file name" in outcomes["with space.he5"] and "not a plain file name" in outcomes["a,b.he5"]
    stored = [k.rsplit("/", 1)[-1] for k in LocalStorage(storage_root).list_keys("omdoao3e/granules/")]
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name) for name in stored)
    assert partial_objects(LocalStorage(storage_root), "omdoao3e") == []
    refused = sum(1 for o in outcomes.values() if o != "stored")
    record("bad input: hostile granule names and concept-ids",
           f"{len(HOSTILE_CONCEPT_IDS)} unusable concept-ids skipped (no partition); {refused} of "
           f"{len(outcomes)} unsafe names failed their partition with the reason; nothing outside the prefix")
