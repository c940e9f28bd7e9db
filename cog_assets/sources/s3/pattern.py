"""Dates from object names: a regular expression's named groups, as VEDA's S3 discovery does.

A name carries its data's time (``OMI_trno2_0.10x0.10_202001_Col3_V4.nc.tif`` is January
2020). The dataset file's ``source.pattern`` names the parts: ``year`` with ``month``, ``day``,
``doy`` (day of the year), ``hour`` and ``minute``; or a whole ``start`` (and ``end``) stamp.
``datetime_range`` widens one date to the day, month or year holding it (start at its first
second, end at its last). The STAC item's times come from here, never from "now".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

DateRange = Literal["day", "month", "year"]
PARTS = ("year", "month", "day", "doy", "hour", "minute")
STAMPS = ("start", "end")
_DIGIT_STAMPS = {4: "%Y", 6: "%Y%m", 8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
_UNIT_OF_LENGTH = {4: "year", 6: "month", 8: "day"}


class NameDateError(ValueError):
    """An object name matches the pattern but its date is impossible (month 13, day 32…)."""


def _needs(groups: set[str], datetime_range: DateRange | None) -> list[str]:
    """What is wrong with the pattern's date groups (empty: nothing)."""
    unknown = sorted(groups - set(PARTS) - set(STAMPS))
    if unknown:
        return [f"named group {', '.join(map(repr, unknown))} is not a date group; name the date's parts "
                f"{', '.join(PARTS)}, or start/end (leave other groups unnamed)"]
    if groups & set(STAMPS) and groups & set(PARTS):
        return ["use either start/end or year/month/day/doy/hour/minute groups, not both"]
    if not groups:
        return ["the pattern needs named groups for the date: (?P<year>…) with (?P<month>…), (?P<day>…), "
                "(?P<doy>…), (?P<hour>…), (?P<minute>…), or (?P<start>…) and optionally (?P<end>…)"]
    rules = [
        ("end" in groups and "start" not in groups, "(?P<end>…) needs (?P<start>…)"),
        (bool(groups & set(PARTS)) and "year" not in groups, "the date's parts need (?P<year>…)"),
        ("doy" in groups and bool(groups & {"month", "day"}), "(?P<doy>…) is the day of the year: drop month and day"),
        ("day" in groups and "month" not in groups, "(?P<day>…) needs (?P<month>…) (or use (?P<doy>…))"),
        ("hour" in groups and not groups & {"day", "doy"}, "(?P<hour>…) needs the day ((?P<day>…) or (?P<doy>…))"),
        ("minute" in groups and "hour" not in groups, "(?P<minute>…) needs (?P<hour>…)"),
        (datetime_range is not None and "end" in groups,
         "datetime_range widens one date; the pattern already has start and end: drop datetime_range"),
        (datetime_range == "day" and bool(groups & set(PARTS)) and not groups & {"day", "doy"},
         "datetime_range: day needs the day in the name ((?P<day>…) or (?P<doy>…))"),
        (datetime_range == "month" and bool(groups & set(PARTS)) and not groups & {"month", "doy"},
         "datetime_range: month needs the month in the name ((?P<month>…) or (?P<doy>…))"),
    ]
    return [message for broken, message in rules if broken]


def check_pattern(pattern: str, datetime_range: DateRange | None) -> re.Pattern[str]:
    """The compiled pattern; ValueError saying what to change when its date groups cannot
    give a date (shown by the dataset loader with the file and field)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    problems = _needs(set(compiled.groupindex), datetime_range)
    if problems:
        raise ValueError("; ".join(problems))
    return compiled


def _number(groups: dict[str, str | None], name: str, default: int) -> int:
    value = groups.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise NameDateError(f"group {name!r} matched {value!r}, which is not a number")
    return int(value)


def _from_parts(groups: dict[str, str | None]) -> tuple[datetime, str]:
    """The moment the parts name, and the finest unit they give."""
    year = _number(groups, "year", 0)
    hour, minute = _number(groups, "hour", 0), _number(groups, "minute", 0)
    if groups.get("doy") is not None:
        doy = _number(groups, "doy", 1)
        first = datetime(year, 1, 1, tzinfo=timezone.utc)
        moment = first + timedelta(days=doy - 1)
        if not 1 <= doy or moment.year != year:
            raise NameDateError(f"day of the year {doy} does not exist in {year}")
        unit = "day"
    else:
        moment = datetime(year, _number(groups, "month", 1), _number(groups, "day", 1), tzinfo=timezone.utc)
        unit = "day" if groups.get("day") else "month" if groups.get("month") else "year"
    if groups.get("hour") is not None:
        unit = "minute" if groups.get("minute") is not None else "hour"
    return moment.replace(hour=hour, minute=minute), unit


def parse_stamp(text: str) -> tuple[datetime, str]:
    """A ``start``/``end`` stamp: digits (``2020``, ``202001``, ``20200115``, up to
    ``20200115T123000`` without the T) or ISO 8601; UTC unless it says otherwise."""
    digits = text.replace("T", "")
    try:
        if digits.isdigit() and len(digits) in _DIGIT_STAMPS:
            moment = datetime.strptime(digits, _DIGIT_STAMPS[len(digits)])
            unit = _UNIT_OF_LENGTH.get(len(digits), "second")
        else:
            moment, unit = datetime.fromisoformat(text), "day" if len(text) == 10 else "second"
    except ValueError as exc:
        raise NameDateError(f"{text!r} is not a date ({exc})") from None
    zone = moment.tzinfo or timezone.utc
    return moment.replace(tzinfo=zone).astimezone(timezone.utc), unit


def period(moment: datetime, unit: str) -> tuple[datetime, datetime]:
    """The day, month or year holding ``moment``: its first and its last second."""
    if unit == "year":
        first = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        after = first.replace(year=first.year + 1)
    elif unit == "month":
        first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        first = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        after = first + timedelta(days=1)
    return first, after - timedelta(seconds=1)


@dataclass(frozen=True)
class NamePattern:
    """Which object names belong to the dataset, and the time each one's data covers."""

    regex: re.Pattern[str]
    datetime_range: DateRange | None = None

    @classmethod
    def of(cls, pattern: str, datetime_range: DateRange | None = None) -> NamePattern:
        return cls(check_pattern(pattern, datetime_range), datetime_range)

    def dates(self, name: str) -> tuple[datetime, datetime] | None:
        """(begin, end) of the data a name stands for; None when the name does not match.
        Raises NameDateError when it matches with an impossible date."""
        match = self.regex.search(name)
        if match is None:
            return None
        groups = match.groupdict()
        try:
            if "start" in groups:
                begin, unit = parse_stamp(groups["start"] or "")
                end = begin
                if groups.get("end"):
                    stamp, end_unit = parse_stamp(groups["end"] or "")
                    end = period(stamp, end_unit)[1] if end_unit in ("day", "month", "year") else stamp
            else:
                begin, unit = _from_parts(groups)
                end = begin
        except ValueError as exc:  # datetime() refusing month 13, day 31 in April…
            raise NameDateError(f"{name}: {exc}") from None
        if self.datetime_range is not None:
            begin, end = period(begin, self.datetime_range)
        if end < begin:
            raise NameDateError(f"{name}: its end {end:%Y-%m-%dT%H:%M:%SZ} is before its start")
        return begin, end
