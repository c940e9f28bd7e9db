from __future__ import annotations

from dagster import AssetKey, DailyPartitionsDefinition, DynamicPartitionsDefinition

from cog_assets.definitions import defs


def test_public_contract_names():
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    for dataset in ("omdoao3e", "gpm_3imerghh"):
        for name in ("granule", "cog", "stac_item", "stac_collection"):
            assert f"{dataset}/{name}" in keys
        assert repo.has_sensor_def(f"{dataset}_cmr_sensor")
        assert repo.asset_graph.get(AssetKey([dataset, "stac_collection"])).partitions_def is None
    omi = repo.asset_graph.get(AssetKey(["omdoao3e", "cog"]))
    assert isinstance(omi.partitions_def, DynamicPartitionsDefinition)
    assert omi.partitions_def.name == "omdoao3e_granules"
    assert omi.backfill_policy.max_partitions_per_run == 500
    # the 400,000-granule dataset is partitioned by UTC day (48 granules each), 10 days per run
    gpm = repo.asset_graph.get(AssetKey(["gpm_3imerghh", "cog"]))
    assert isinstance(gpm.partitions_def, DailyPartitionsDefinition)
    assert gpm.partitions_def.get_first_partition_key() == "1998-01-01"
    assert gpm.backfill_policy.max_partitions_per_run == 10
    check_keys = {(key.asset_key.path[0], key.name) for key in repo.asset_graph.asset_check_keys}
    for dataset, source in (("omdoao3e", "cmr"), ("gpm_3imerghh", "cmr"), ("no2_monthly", "source")):
        assert {name for ds, name in check_keys if ds == dataset} == {"valid_cog", "in_sync_with_stac_api", f"in_step_with_{source}"}
    # the third dataset is found in a bucket: its own sensor, partitions by object
    assert repo.has_sensor_def("no2_monthly_s3_sensor") and not repo.has_sensor_def("no2_monthly_cmr_sensor")
    assert repo.asset_graph.get(AssetKey(["no2_monthly", "cog"])).partitions_def.name == "no2_monthly_granules"
    for dataset in ("omdoao3e", "gpm_3imerghh", "no2_monthly"):
        for job in ("stac_republish", "withdraw", "granule_job", "collection_job"):
            assert repo.has_job(f"{dataset}_{job}")
        stats = repo.asset_graph.get(AssetKey([dataset, "aoi_statistics"]))
        assert isinstance(stats.partitions_def, DynamicPartitionsDefinition)
        assert stats.partitions_def.name == "aois"
        assert AssetKey([dataset, "cog"]) in stats.parent_keys
    assert repo.has_sensor_def("aoi_sensor")
    assert type(defs.resources["io_manager"]).__name__ == "CogAssetsIOManager"
