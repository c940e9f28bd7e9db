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
    check_keys = {key.name for key in repo.asset_graph.asset_check_keys}
    assert check_keys == {"valid_cog", "in_sync_with_stac_api", "in_step_with_cmr"}
    for dataset in ("omdoao3e", "gpm_3imerghh"):
        for job in ("stac_republish", "withdraw", "granule_job", "collection_job"):
            assert repo.has_job(f"{dataset}_{job}")
        stats = repo.asset_graph.get(AssetKey([dataset, "aoi_statistics"]))
        assert isinstance(stats.partitions_def, DynamicPartitionsDefinition)
        assert stats.partitions_def.name == "aois"
        assert AssetKey([dataset, "cog"]) in stats.parent_keys
    assert repo.has_sensor_def("aoi_sensor")
    assert type(defs.resources["io_manager"]).__name__ == "CogAssetsIOManager"
