from __future__ import annotations

from dagster import AssetKey, DynamicPartitionsDefinition

from cog_assets.definitions import defs


def test_public_contract_names():
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    for dataset in ("omdoao3e", "gpm_3imerghh"):
        for name in ("granule", "cog", "stac_item", "stac_collection"):
            assert f"{dataset}/{name}" in keys
        assert repo.has_sensor_def(f"{dataset}_cmr_sensor")
        partitions = repo.asset_graph.get(AssetKey([dataset, "cog"])).partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition)
        assert partitions.name == f"{dataset}_granules"
        assert repo.asset_graph.get(AssetKey([dataset, "stac_collection"])).partitions_def is None
    check_keys = {key.name for key in repo.asset_graph.asset_check_keys}
    assert check_keys == {"valid_cog", "in_sync_with_stac_api"}
    for dataset in ("omdoao3e", "gpm_3imerghh"):
        assert repo.has_job(f"{dataset}_stac_republish")
