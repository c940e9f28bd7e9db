"""The valid_cog check means what it says: it blocks, it is evaluated per run with the number
of COGs the run wrote, and an invalid COG is refused (never stored) and reported."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import rasterio
from dagster import AssetCheckKey, AssetKey

from cog_assets.defs.assets import VALID_COG_CHECK
from cog_assets.formats import cog as cogs
from cog_assets.formats.readers import Raster

from .granule_files import make_omi_granule
from .helpers import Platform, add_omi_granule, failure_messages

DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)
CHECK = AssetCheckKey(AssetKey(["omdoao3e", "cog"]), VALID_COG_CHECK)


def _write_plain_geotiff(raster: Raster, destination: Path) -> None:
    """A striped GeoTIFF without overviews: readable, but not a Cloud-Optimized GeoTIFF."""
    with rasterio.open(destination, "w", **cogs.source_profile(raster), tiled=False) as out:
        out.write(raster.data, 1)


def test_valid_cog_is_a_blocking_error_check(datasets):
    platform_assets = Platform(datasets["omdoao3e"], None, "file:///unused", None).built
    [spec] = [s for s in platform_assets.chain.check_specs if s.name == VALID_COG_CHECK]
    assert spec.blocking is True and spec.asset_key == AssetKey(["omdoao3e", "cog"])


def test_invalid_cog_is_refused_and_reported_per_run(fake_cmr, datasets, instance, local_storage_url, monkeypatch):
    content = make_omi_granule().content
    good, bad = (add_omi_granule(fake_cmr, content, DAY + timedelta(days=n)) for n in range(2))
    bad_item = bad.file_name[: -len(".he5")]
    write_cog = cogs.write_cog

    def write(raster: Raster, destination: Path, threads: int = 1) -> None:
        if destination.stem == bad_item:
            _write_plain_geotiff(raster, destination)
        else:
            write_cog(raster, destination, threads)

    monkeypatch.setattr(cogs, "write_cog", write)
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)
    instance.add_dynamic_partitions("omdoao3e_granules", [platform.key(good.concept_id), platform.key(bad.concept_id)])
    result = platform.run_range(good.concept_id, bad.concept_id, workers=1)  # converted in this process, patched

    assert not result.success
    [message] = failure_messages(result)
    assert "1 of 2 granules failed" in message and bad.concept_id in message and "is not valid" in message
    root = Path(local_storage_url[len("file://"):]) / "omdoao3e" / "cogs"
    stored = sorted(p.relative_to(root).parts[0] for p in root.rglob("*.tif"))
    assert stored == [good.concept_id]  # refused: not stored

    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.asset_check_key, evaluation.passed, evaluation.blocking) == (CHECK, False, True)
    assert evaluation.severity.value == "ERROR"
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert metadata["cogs_validated"] == 2 and metadata["cogs_invalid"] == 1
    assert list(metadata["invalid"]) == [bad.concept_id]
    assert any("tiled" in error for error in metadata["invalid"][bad.concept_id])
    history = instance.event_log_storage.get_asset_check_execution_history(CHECK, limit=1)
    assert history[0].status.value == "FAILED" and history[0].run_id == result.run_id

    monkeypatch.setattr(cogs, "write_cog", write_cog)  # the retry of the bad granule passes
    retry = platform.run(bad.concept_id)
    assert retry.success, failure_messages(retry)
    [evaluation] = retry.get_asset_check_evaluations()
    assert evaluation.passed and {k: v.value for k, v in evaluation.metadata.items()}["cogs_validated"] == 1


def test_the_validator_itself_rejects_a_plain_geotiff(tmp_path):
    data = np.ones((1024, 1024), np.float32)
    raster = Raster(data, rasterio.Affine(0.1, 0, 0, 0, -0.1, 50), -9999.0, None, data > 0)
    _write_plain_geotiff(raster, tmp_path / "plain.tif")
    valid, errors, _ = cogs.validate(tmp_path / "plain.tif")
    assert not valid and errors
    cogs.write_cog(raster, tmp_path / "cog.tif")
    assert cogs.validate(tmp_path / "cog.tif")[0]
