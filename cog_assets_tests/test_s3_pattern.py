"""Dates from object names (``source.pattern``), and the ``source`` section's validation."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cog_assets.dataset import DATASETS_DIR, DatasetConfigError, load_dataset
from cog_assets.sources.s3.pattern import NameDateError, NamePattern


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("pattern", "datetime_range", "name", "begin", "end"),
    [
        # VEDA's no2-monthly: year and month, widened to the month
        (r"_(?P<year>\d{4})(?P<month>\d{2})_Col3", "month", "OMI_trno2_0.10x0.10_202002_Col3_V4.nc.tif",
         utc(2020, 2, 1), utc(2020, 2, 29, 23, 59, 59)),
        (r"_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})\.tif$", None, "x_20200315.tif",
         utc(2020, 3, 15), utc(2020, 3, 15)),
        (r"_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})\.tif$", "day", "x_20200315.tif",
         utc(2020, 3, 15), utc(2020, 3, 15, 23, 59, 59)),
        (r"_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})\.tif$", "month", "x_20201215.tif",
         utc(2020, 12, 1), utc(2020, 12, 31, 23, 59, 59)),
        (r"A(?P<year>\d{4})(?P<doy>\d{3})\.", "day", "MOD.A2020366.tif", utc(2020, 12, 31), utc(2020, 12, 31, 23, 59, 59)),
        (r"(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)T(?P<hour>\d\d)(?P<minute>\d\d)", None, "g_2021-07-04T1830.tif",
         utc(2021, 7, 4, 18, 30), utc(2021, 7, 4, 18, 30)),
        (r"_(?P<year>\d{4})\.tif$", "year", "annual_2019.tif", utc(2019, 1, 1), utc(2019, 12, 31, 23, 59, 59)),
        (r"_(?P<start>\d{8})_(?P<end>\d{8})\.tif$", None, "w_20200101_20200107.tif",
         utc(2020, 1, 1), utc(2020, 1, 7, 23, 59, 59)),
        (r"_(?P<start>[0-9T:Z-]+)\.tif$", None, "s_2020-01-01T06:00:00Z.tif", utc(2020, 1, 1, 6), utc(2020, 1, 1, 6)),
        (r"_(?P<start>\d{6})\.tif$", "month", "m_202011.tif", utc(2020, 11, 1), utc(2020, 11, 30, 23, 59, 59)),
    ],
)
def test_dates_for_each_group_kind(pattern, datetime_range, name, begin, end):
    assert NamePattern.of(pattern, datetime_range).dates(name) == (begin, end)


def test_a_name_that_does_not_match_has_no_dates():
    assert NamePattern.of(r"^OMI_(?P<year>\d{4})(?P<month>\d{2})\.tif$", "month").dates("README.txt") is None


@pytest.mark.parametrize(
    ("pattern", "name", "says"),
    [
        (r"_(?P<year>\d{4})(?P<month>\d{2})\.tif$", "x_202013.tif", "month must be in 1..12"),
        (r"A(?P<year>\d{4})(?P<doy>\d{3})\.", "A2021366.tif", "day of the year 366 does not exist in 2021"),
        (r"_(?P<start>\d{8})_(?P<end>\d{8})\.tif$", "w_20200107_20200101.tif", "is before its start"),
        (r"_(?P<start>\w+)\.tif$", "s_yesterday.tif", "'yesterday' is not a date"),
    ],
)
def test_a_matching_name_with_an_impossible_date_is_refused_with_the_reason(pattern, name, says):
    with pytest.raises(NameDateError, match=says) as err:
        NamePattern.of(pattern).dates(name)
    assert name in str(err.value) or "yesterday" in str(err.value)


def _write(tmp_path: Path, source: str, reader: str = "reader:\n  format: geotiff\n") -> Path:
    text = (DATASETS_DIR / "no2_monthly.yaml").read_text().replace("id: no2_monthly", "id: demo")
    start, end = text.index("source:"), text.index("reader:")
    text = text[:start] + source + text[end:]
    start, end = text.index("reader:"), text.index("stac:")
    path = tmp_path / "demo.yaml"
    path.write_text(text[:start] + reader + text[end:])
    return path


S3 = "source:\n  kind: s3\n  url: s3://bucket/no2/\n"


@pytest.mark.parametrize(
    ("source", "field", "says"),
    [
        (S3 + "  pattern: '_(?P<yr>\\d{4})'\n", "source.pattern", "named group 'yr' is not a date group"),
        (S3 + "  pattern: '_(?P<month>\\d{2})'\n", "source.pattern", "the date's parts need (?P<year>…)"),
        (S3 + "  pattern: '_(?P<year>\\d{4})(?P<day>\\d{2})'\n", "source.pattern", "(?P<day>…) needs (?P<month>…)"),
        (S3 + "  pattern: '_(?P<year>\\d{4})'\n  datetime_range: month\n", "source.pattern",
         "datetime_range: month needs the month in the name"),
        (S3 + "  pattern: '_(?P<start>\\d{8})_(?P<end>\\d{8})'\n  datetime_range: day\n", "source.pattern",
         "the pattern already has start and end: drop datetime_range"),
        (S3 + "  pattern: '_(?P<year>\\d{4}'\n", "source.pattern", "not a valid regular expression"),
        (S3 + "  pattern: 'no2'\n", "source.pattern", "needs named groups for the date"),
        (S3 + "  pattern: '_(?P<year>\\d{4})'\n  datetime_range: week\n", "source.datetime_range",
         "Input should be 'day', 'month' or 'year'"),
        ("source:\n  kind: s3\n  url: http://example.org/no2/\n  pattern: '(?P<year>\\d{4})'\n", "source.url",
         "expected s3://bucket/prefix/ or file:///absolute/dir/"),
        ("source:\n  kind: s3\n  url: s3://Bad_Bucket/x/\n  pattern: '(?P<year>\\d{4})'\n", "source.url",
         "valid bucket name"),
        ("source:\n  kind: s3\n  pattern: '(?P<year>\\d{4})'\n", "source.url", "Field required"),
        ("source:\n  kind: ftp\n", "source", "does not match any of the expected tags: 'cmr', 's3'"),
        (S3 + "  pattern: '(?P<year>\\d{4})'\n  prefix: x\n", "source.prefix", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_source_section_is_rejected_naming_file_field_and_expectation(tmp_path, source, field, says):
    path = _write(tmp_path, source)
    with pytest.raises(DatasetConfigError) as err:
        load_dataset(path)
    message = str(err.value)
    assert str(path) in message and f"field '{field}'" in message and says in message, message


def test_source_and_cmr_sections_must_agree(tmp_path):
    cmr = "cmr:\n  short_name: X\n  version: '1'\n  provider: P\n"
    with pytest.raises(DatasetConfigError, match="source kind s3 takes no cmr section: remove it"):
        load_dataset(_write(tmp_path, S3 + "  pattern: '(?P<year>\\d{4})'\n" + cmr))
    with pytest.raises(DatasetConfigError, match="a dataset found in CMR needs a cmr section"):
        load_dataset(_write(tmp_path, "source:\n  kind: cmr\n"))
    day = S3 + "  pattern: '(?P<year>\\d{4})'\npartitioning:\n  by: day\n  granules_per_day: 1\n"
    with pytest.raises(DatasetConfigError, match="partitioning by day is for CMR datasets"):
        load_dataset(_write(tmp_path, day))


def test_reader_settings_must_fit_the_format(tmp_path):
    good = S3 + "  pattern: '(?P<year>\\d{4})'\n"
    with pytest.raises(DatasetConfigError, match=r"field 'reader'.*variable, scale_factor do\(es\) not apply to format geotiff"):
        load_dataset(_write(tmp_path, good, "reader:\n  format: geotiff\n  variable: /x\n  scale_factor: 2\n"))
    with pytest.raises(DatasetConfigError, match="format hdf5_latlon_grid needs variable"):
        load_dataset(_write(tmp_path, good, "reader:\n  format: hdf5_latlon_grid\n"))


def test_the_shipped_no2_dataset_reads_vedas_names():
    no2 = load_dataset(DATASETS_DIR / "no2_monthly.yaml")
    assert (no2.source.kind, no2.source.bucket, no2.source.prefix) == ("s3", "veda-data-store", "no2-monthly/")
    assert no2.source.names.dates("OMI_trno2_0.10x0.10_202001_Col3_V4.nc.tif") == (utc(2020, 1, 1), utc(2020, 1, 31, 23, 59, 59))
    assert no2.source.names.dates("OMI_trno2_0.10x0.10_202001_Col3_V4.nc.tif.aux.xml") is None
    assert no2.cmr is None and no2.reader.format == "geotiff"
