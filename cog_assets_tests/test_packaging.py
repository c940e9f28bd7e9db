"""Packaging: every library the code imports is declared with a floor (bin/check-floors proves
the floors work), and git ignores what running the platform writes into the checkout."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _install_requires() -> dict[str, str]:
    """install_requires from setup.py: normalized name -> version specifier."""
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    entries = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "install_requires"))
    parsed = (re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*(.*)$", e).groups() for e in entries)
    return {name.lower().replace("_", "-"): spec for name, spec in parsed}


def _third_party_imports() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "cog_assets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in ("cog_assets", "__future__")}


def test_every_imported_library_is_declared_with_a_floor():
    declared = _install_requires()
    providers = packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in _third_party_imports()
        if not {d.lower().replace("_", "-") for d in providers.get(module, [])} & set(declared)
    }
    assert undeclared == {}, "imported by cog_assets but missing from setup.py install_requires"
    without_floor = [name for name, spec in declared.items() if not re.search(r"(>=|==)\s*\d", spec)]
    assert without_floor == []


def test_floors_are_at_least_what_the_apis_in_use_need():
    """pystac's projection v2 (proj:code) and core ItemAssetDefinition arrived in 1.12; shapely's
    to_geojson in 2.0; antimeridian's great_circle in 0.4; rio-tiler 7 (preview, ImageData.rescale
    and render with a colormap) needs rasterio 1.4 (bin/check-floors installs these)."""
    declared = _install_requires()
    needed = {"pystac": (1, 12), "shapely": (2, 0), "antimeridian": (0, 4), "rasterio": (1, 4), "rio-tiler": (7, 0)}
    for name, minimum in needed.items():
        floor = re.search(r">=\s*([\d.]+)", declared[name]).group(1)
        assert tuple(int(p) for p in floor.split(".")[:2]) >= minimum, f"{name}>={floor} is below {minimum}"


def test_check_floors_script_is_executable():
    script = REPO / "bin" / "check-floors"
    assert script.exists() and os.access(script, os.X_OK)


def test_git_ignores_what_running_the_platform_writes(tmp_path):
    from cog_assets.defs.resources import default_storage_url

    cwd = Path.cwd()
    try:
        os.chdir(REPO)  # bin/platform runs from the checkout
        output = Path(default_storage_url()[len("file://"):])
    finally:
        os.chdir(cwd)
    paths = [output / "catalog.json", REPO / ".dagster_home" / "dagster.yaml", REPO / ".venv" / "bin" / "python"]
    relative = [str(p.relative_to(REPO)) for p in paths]
    checked = subprocess.run(["git", "check-ignore", *relative], cwd=REPO, capture_output=True, text=True)
    assert checked.stdout.split() == relative, checked.stderr
