"""Listing a prefix a tick at a time (``sources.s3.discover``), on a local folder standing in
for a bucket: the page and tick boundaries, the straddling stems, the cursor."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cog_assets.sources.s3.bucket import LocalFolder
from cog_assets.sources.s3.config import S3Source
from cog_assets.sources.s3.discover import ListingBudget, ListingCursor, list_tick

NOW = datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
PATTERN = r"_(?P<year>\d{4})(?P<month>\d{2})\.(nc|tif|h5)$"


def _source(folder: Path) -> S3Source:
    return S3Source(kind="s3", url=folder.as_uri() + "/", pattern=PATTERN, datetime_range="month")


def _touch(folder: Path, name: str, when: datetime = NOW - timedelta(days=30)) -> None:
    path = folder / name
    path.write_bytes(name.encode())
    os.utime(path, (when.timestamp(), when.timestamp()))


class Registry:
    """What the sensor would have registered: stems → keys, updated as a tick's records are."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def __call__(self) -> dict[str, str]:
        return dict(self.keys)

    def tick(self, source: S3Source, cursor: ListingCursor, per_tick: int, now: datetime = NOW):
        budget = ListingBudget(per_tick, 20.0, timedelta(hours=2), timedelta(0), page_size=per_tick)
        listing = list_tick(LocalFolder(source), source, cursor, self, lambda record, key: True, budget, now)
        for record in listing.records:
            self.keys[record.concept_id] = f"{record.begin:%Y-%m-%d}_{record.concept_id}"
        for stem in listing.deleted:
            del self.keys[stem]
        return listing


def _pass(registry: Registry, source: S3Source, cursor: ListingCursor, per_tick: int) -> tuple[list, ListingCursor]:
    listings = []
    while True:
        listing = registry.tick(source, cursor, per_tick)
        listings.append(listing)
        cursor = listing.cursor
        if not cursor.in_pass:
            return listings, cursor


def test_a_stem_straddling_a_tick_boundary_is_one_granule_and_refuses_its_twin(tmp_path):
    for name in ("a_202001.h5", "a_202001.nc", "b_202002.tif", "c_202003.tif"):
        _touch(tmp_path, name)
    registry, source = Registry(), _source(tmp_path)
    listings, cursor = _pass(registry, source, ListingCursor(), per_tick=1)
    assert len(listings) == 4 and sorted(registry.keys) == ["a_202001", "b_202002", "c_202003"]
    (refused,) = [r for listing in listings for r in listing.refused]
    assert refused.name == "a_202001.nc" and "a_202001.h5 has the same stem" in refused.reason
    assert listings[0].cursor.carry == {"a_202001": "a_202001.h5"}  # carried across the boundary
    assert not any(listing.deleted for listing in listings)  # its twin never made it look gone


def test_deletions_are_found_in_the_tick_whose_range_covers_the_stem(tmp_path):
    names = [f"g_2020{m:02d}.tif" for m in range(1, 8)]
    for name in names:
        _touch(tmp_path, name)
    registry, source = Registry(), _source(tmp_path)
    _, cursor = _pass(registry, source, ListingCursor(), per_tick=2)
    for gone in (names[0], names[3], names[6]):  # first, middle, last
        (tmp_path / gone).unlink()
    listings, cursor = _pass(registry, source, cursor, per_tick=2)
    deleted = [(n, listing.deleted) for n, listing in enumerate(listings) if listing.deleted]
    # 4 objects left, 2 a tick: the first tick's range ends at g_202003.tif (g_202003 itself is
    # carried: g_202003.zip could follow), the second reaches the end of the prefix
    assert deleted == [(0, ["g_202001"]), (1, ["g_202004", "g_202007"])]
    assert listings[0].cursor.carry == {"g_202003": "g_202003.tif"}
    assert sorted(registry.keys) == [n[:-4] for n in names if n not in (names[0], names[3], names[6])]
    assert cursor.counts["listed"] == 4 and cursor.last_pass == NOW


def test_between_passes_a_tick_lists_only_names_after_the_last_one(tmp_path):
    _touch(tmp_path, "g_202001.tif")
    registry, source = Registry(), _source(tmp_path)
    budget_hour = ListingBudget(10, 20.0, timedelta(hours=2), timedelta(hours=1))
    first = list_tick(LocalFolder(source), source, ListingCursor(), registry, lambda r, k: True, budget_hour, NOW)
    registry.keys["g_202001"] = "2020-01-01_g_202001"
    assert first.mode == "pass" and first.complete and first.cursor.tail == "g_202001.tif"
    _touch(tmp_path, "g_202002.tif", NOW)
    _touch(tmp_path, "a_202003.tif", NOW)  # sorts first: found by the next full pass, not the tail
    tail = list_tick(LocalFolder(source), source, first.cursor, registry, lambda r, k: True, budget_hour,
                     NOW + timedelta(minutes=5))
    assert tail.mode == "tail" and [r.concept_id for r in tail.records] == ["g_202002"]
    assert tail.published == {"g_202002"}  # new after a complete pass: published since the switch-on
    registry.keys["g_202002"] = "2020-02-01_g_202002"
    later = list_tick(LocalFolder(source), source, tail.cursor, registry, lambda r, k: True, budget_hour,
                      NOW + timedelta(hours=1))
    assert later.mode == "pass" and [r.concept_id for r in later.records] == ["a_202003"]


def test_the_cursor_round_trips_and_is_compressed_after_a_bulk_upload(tmp_path):
    """5,000 objects uploaded after the switch-on are remembered until the watermark passes
    them (about 7 bytes each, compressed; 30 bytes each as plain JSON)."""
    reported = {f"granule_{n:06d}": 1_717_000_000 + n for n in range(5000)}
    cursor = ListingCursor(started=NOW, in_pass=True, after="x.tif", pass_began=NOW, reported=reported,
                           carry={"x": "x.tif"}, counts={"listed": 3})
    text = cursor.to_json()
    assert ListingCursor.from_json(text) == cursor and len(text) < 40_000


def test_an_overwrite_in_the_second_a_pass_began_is_published_after_it(tmp_path):
    """S3 stamps LastModified in whole seconds: an object overwritten 0.3 s after a pass began
    carries that second, which is before the pass's exact start. It is still an overwrite
    published after the pass, and runs even when its data's date would not."""
    _touch(tmp_path, "a_202001.tif")
    registry, source = Registry(), _source(tmp_path)
    began = NOW + timedelta(seconds=0.6)
    budget = ListingBudget(100, 20.0, timedelta(0), timedelta(0), page_size=100)
    first = list_tick(LocalFolder(source), source, ListingCursor(started=began), registry,
                      lambda r, k: False, budget, began)
    registry.keys["a_202001"] = "2020-01-01_a_202001"
    _touch(tmp_path, "a_202001.tif", NOW)  # overwritten at 12:00:00.9, stamped 12:00:00
    later = list_tick(LocalFolder(source), source, first.cursor, registry, lambda r, k: False, budget,
                      NOW + timedelta(minutes=1))
    assert [r.concept_id for r in later.records] == ["a_202001"] and later.published == {"a_202001"}
