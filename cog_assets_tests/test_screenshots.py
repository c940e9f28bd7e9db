"""What a person sees: `dagster dev` on a small demo catalogue, photographed by headless
Chromium (Debian's, driven by Playwright). The pictures must not be blank; with COG_ASSETS_UPDATE_SCREENSHOTS=1 they replace
the ones under docs/screenshots/ that the README's tour shows."""

from __future__ import annotations

import os
import shutil
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import rasterio
from dagster import DagsterInstance
from playwright.sync_api import expect, sync_playwright

from .dagster_dev import DagsterDev
from .granule_files import make_omi_granule, omi_values
from .helpers import Platform, add_omi_granule, partition_of

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
DAY = datetime(2024, 6, 1, tzinfo=timezone.utc)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the machine's network is closed: no background fetches, no update checks
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _photograph(page, url: str, out: Path, click: str | None = None) -> None:
    """Open ``url`` (optionally click a text, e.g. the preview's Markdown) and photograph it."""
    page.goto(url, wait_until="networkidle")
    if click is not None:
        page.get_by_text(click).first.click()
        page.locator("[role=dialog] img").first.wait_for(state="visible")
        expect(page.locator("[role=dialog]").first).to_have_css("opacity", "1")  # faded in
    page.screenshot(path=str(out))


def _not_blank(path: Path) -> tuple[int, float]:
    """Distinct colours and the spread of brightness: a blank or error page has few of both."""
    with warnings.catch_warnings():  # a screenshot has no georeferencing, as expected
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as png:
            pixels = png.read()[:3].reshape(3, -1).T
    colours = len(np.unique(pixels[:: max(1, len(pixels) // 200_000)], axis=0))
    return colours, float(pixels.mean(axis=1).std())


def test_the_ui_shows_lineage_a_preview_and_a_failure_cause(datasets, fake_cmr, tmp_path, monkeypatch):
    storage, home = tmp_path / "storage", tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    granules = [add_omi_granule(fake_cmr, make_omi_granule(omi_values(seed=n)).content, DAY + timedelta(days=n)) for n in range(3)]
    bad = granules[2]
    fake_cmr.set_file(bad, b"not the granule CMR describes")
    with DagsterInstance.from_config(str(home)) as instance:
        platform = Platform(datasets["omdoao3e"], fake_cmr, storage.as_uri(), instance)
        assert platform.run_range(granules[0].concept_id, granules[1].concept_id).success
        assert not platform.run(bad.concept_id).success
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))}
    env.update(COG_ASSETS_CMR_URL=fake_cmr.url, COG_ASSETS_STORAGE=storage.as_uri(), DAGSTER_HOME=str(home))
    dev = DagsterDev(home, env)
    shots = tmp_path / "shots"
    shots.mkdir()
    base = f"http://127.0.0.1:{dev.port}"
    pages = {
        "lineage": f"{base}/assets/omdoao3e/cog?view=lineage&lineageDepth=2",
        "cog-partition": f"{base}/assets/omdoao3e/cog?view=partitions&partition={quote(partition_of(granules[0]))}",
        "failed-partition": f"{base}/assets/omdoao3e/stac_item?view=events&partition={quote(partition_of(bad))}",
    }
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for name, url in pages.items():
                _photograph(page, url, shots / f"{name}.png", "[Show Markdown]" if name == "cog-partition" else None)
            browser.close()
    finally:
        dev.stop()
    for name in pages:
        colours, spread = _not_blank(shots / f"{name}.png")
        assert colours > 50 and spread > 5, f"{name}: {colours} colours, brightness spread {spread:.1f}"
    if os.environ.get("COG_ASSETS_UPDATE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        for name in pages:
            shutil.copy(shots / f"{name}.png", target / f"{name}.png")
