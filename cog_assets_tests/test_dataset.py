from __future__ import annotations

from pathlib import Path

import pytest

from cog_assets.dataset import DATASETS_DIR, DatasetConfigError, load_dataset, load_datasets
from cog_assets.definitions import build_definitions


def test_shipped_datasets_load(datasets):
    assert set(datasets) == {"omdoao3e", "gpm_3imerghh", "no2_monthly"}
    omi = datasets["omdoao3e"]
    assert (omi.cmr.short_name, omi.cmr.version, omi.cmr.provider) == ("OMDOAO3e", "003", "GES_DISC")
    assert omi.reader.variable == "/HDFEOS/GRIDS/ColumnAmountO3/Data Fields/ColumnAmountO3"
    assert datasets["gpm_3imerghh"].reader.format == "hdf5_latlon_grid"
    assert omi.partitions_name == "omdoao3e_granules"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _valid_text(dataset_id: str = "demo") -> str:
    return (DATASETS_DIR / "omdoao3e.yaml").read_text().replace("id: omdoao3e", f"id: {dataset_id}")


def test_wrong_type_names_file_field_and_expectation(tmp_path):
    path = _write(tmp_path, "demo.yaml", _valid_text().replace("auto_run_days: 7", "auto_run_days: soon"))
    with pytest.raises(DatasetConfigError) as err:
        load_dataset(path)
    message = str(err.value)
    assert str(path) in message
    assert "field 'sensor.auto_run_days'" in message
    assert "valid number" in message and "'soon'" in message


def test_missing_and_unknown_fields_are_named(tmp_path):
    text = _valid_text().replace("  short_name: OMDOAO3e\n", "").replace("reader:\n", "reader:\n  colour: blue\n")
    with pytest.raises(DatasetConfigError) as err:
        load_dataset(_write(tmp_path, "demo.yaml", text))
    message = str(err.value)
    assert "field 'cmr.short_name': Field required" in message
    assert "field 'reader.colour': Extra inputs are not permitted" in message


def test_relative_variable_path_is_rejected(tmp_path):
    text = _valid_text().replace('variable: "/HDFEOS', 'variable: "HDFEOS')
    with pytest.raises(DatasetConfigError, match=r"field 'reader.variable'.*absolute HDF5 path"):
        load_dataset(_write(tmp_path, "demo.yaml", text))


def test_id_must_match_file_name(tmp_path):
    with pytest.raises(DatasetConfigError, match=r"rename the file to other.yaml"):
        load_dataset(_write(tmp_path, "demo.yaml", _valid_text("other")))


def test_yaml_syntax_error_names_file(tmp_path):
    path = _write(tmp_path, "demo.yaml", "id: demo\ncmr: [unclosed\n")
    with pytest.raises(DatasetConfigError, match=r"demo.yaml is not valid YAML"):
        load_dataset(path)


def test_adding_a_file_adds_a_dataset(tmp_path):
    for path in DATASETS_DIR.glob("*.yaml"):
        _write(tmp_path, path.name, path.read_text())
    _write(tmp_path, "demo.yaml", _valid_text())
    assert [d.id for d in load_datasets(tmp_path)] == ["demo", "gpm_3imerghh", "no2_monthly", "omdoao3e"]
    defs = build_definitions(datasets_dir=tmp_path)
    repo = defs.get_repository_def()
    assert repo.has_sensor_def("demo_cmr_sensor")
    assert {"demo/granule", "demo/cog", "demo/stac_item", "demo/stac_collection"} <= {
        key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()
    }
