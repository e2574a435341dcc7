"""Front-matter dates, read as Jekyll 4.3 reads them: the YAML value as Psych types it,
then, for a string, Ruby's ``Time.parse`` in the site's zone (Jekyll sets TZ to it).

``Time.parse`` reads far more than ISO 8601: '2021-10-01 10:00 PM', '2021/10/03 10:00',
'October 4, 2021', 'Mon, 04 Oct 2021 10:00:00 +0200', zone abbreviations such as 'PST'.
Those forms are read here the same way. What Ruby reads only by guessing (no year, which
it takes from today; an unknown zone word, which it ignores; February 30, which it rolls
into March) is an error naming the post instead.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from .text import PostError

MIN_YEAR, MAX_YEAR = 1000, 9998

# Dates are written with their own offset when it is one a real zone uses: whole minutes
# from -12:00 to +14:00. Any other (a typo like +23:00; one below -12:00, which jing's
# xsd:dateTime rejects past -13:00; a zone's local mean time with seconds, such as
# Asia/Kolkata's +05:53:28 in 1800, which RFC 3339 cannot write) keeps its instant,
# shown in UTC.
MIN_OFFSET = timedelta(hours=-12)
MAX_OFFSET = timedelta(hours=14)

MONTHS = {name: number for number, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
    ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
    ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
    ("dec", "december")), start=1) for name in names}
_WEEKDAY = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|sday|nesday|urday)?"

# The zone names Ruby's Time.parse knows (Time::ZoneOffset in time.rb), in hours; besides
# these it knows only the site zone's own abbreviations (its names on 1 January and
# 1 July), and reads any other word as no zone at all: local time.
ZONE_HOURS: dict[str, int] = {
    "utc": 0, "z": 0, "ut": 0, "gmt": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
    "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
    **{letter: hours for hours, letter in enumerate("abcdefghiklm", start=1)},
    **{letter: -hours for hours, letter in enumerate("nopqrstuvwxy", start=1)},
}

_TIME = re.compile(
    r"(?<![\d:.])(?P<h>\d{1,2})(?::(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:[.,](?P<f>\d+))?)?"
    r"|\s*(?=[ap]\.?m\b)|h\b)(?:\s*(?P<ap>[ap])\.?m\b\.?)?"
    r"(?:\s*(?P<zone>[+-]\d{1,2}(?::?\d{2})?|[a-z]{1,5}\b))?", re.IGNORECASE)
_DATES = (
    # 2021-10-04, 2021/10/04, 2021.10.04; then 04/10/2021 (Ruby reads day/month/year).
    re.compile(r"(?P<y>\d{4})([-/.])(?P<mo>\d{1,2})\2(?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})/(?P<mo>\d{1,2})/(?P<y>\d{4})(?!\d)"),
    re.compile(r"^\s*(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})(?=[\sT]|$)"),
    # October 4, 2021; Oct. 4th 2021; 4 October 2021; 04 Oct 21.
    re.compile(r"(?P<mon>[a-z]{3,9})\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{2,4})"
               r"(?!\d)", re.IGNORECASE),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?P<mon>[a-z]{3,9})\.?,?\s+"
               r"(?P<y>\d{2,4})(?!\d)", re.IGNORECASE),
)
_LEFTOVER = re.compile(rf"^(?:[\s,t]|{_WEEKDAY}\b)*$", re.IGNORECASE)


def _check_year(path: str, value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise PostError(path, f"date year {value.year} is outside {MIN_YEAR}-{MAX_YEAR}")
    offset = value.utcoffset()
    if offset is not None and not (MIN_OFFSET <= offset <= MAX_OFFSET
                                   and not offset % timedelta(minutes=1)):
        return value.astimezone(UTC)
    return value


def parse_date(path: str, value: object, tz: tzinfo, key: str = "date") -> datetime:
    """A front-matter date, read as Jekyll 4.3 reads it.

    An unquoted YAML timestamp without offset is UTC (Psych makes it a UTC instant, then
    Jekyll shows it in the site zone); a string or date without offset is wall-clock time
    in the site zone, resolved across DST changes as Ruby resolves it; an explicit offset
    or zone abbreviation is kept.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            try:
                return _check_year(path, value.replace(tzinfo=UTC).astimezone(tz))
            except OverflowError:
                raise PostError(path, f"{key} {value} is out of range") from None
        return _check_year(path, value)
    if isinstance(value, date):
        return _check_year(path, local_time(datetime(value.year, value.month, value.day),
                                            tz))
    if isinstance(value, str):
        return _check_year(path, _parse_text(path, value, tz, key))
    raise PostError(path, f"{key} is not a date: {str(value)[:60]!r}")


def local_time(naive: datetime, tz: tzinfo) -> datetime:
    """Wall-clock time in ``tz`` as Ruby's Time.local reads it: an hour that happens twice
    (clocks going back) is the second one, in standard time; an hour that never happens
    (clocks going forward) is read with the offset before the change, so 02:30 on the
    spring-forward night is 03:30 summer time."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return second.astimezone(UTC).astimezone(tz)  # twice: the later one
    return first.astimezone(UTC).astimezone(tz)  # never: shifted forward


# The form nearly every post's date has ('2021-10-05 22:03:57 +0800', which YAML reads
# as a string): read by one pattern, as the general reading below reads it. Anything
# that form's checks could refuse (hour 24, a leap second, an offset past 23:59, a day
# the month has not) is left to the general reading, which says why.
_USUAL = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([01][0-9]|2[0-3]):([0-5][0-9]):"
                    r"([0-5][0-9]) ([+-])([01][0-9]|2[0-3])([0-5][0-9])")
_OFFSETS: dict[str, timezone] = {}


def _usual(text: str) -> datetime | None:
    """A date in the usual form, or None for the general reading."""
    match = _USUAL.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, hours, minutes = match.groups()
    offset = text[-5:]
    zone = _OFFSETS.get(offset)
    if zone is None:
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        zone = _OFFSETS.setdefault(offset, timezone(-delta if sign == "-" else delta))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute),
                        int(second), tzinfo=zone)
    except ValueError:
        return None


def _parse_text(path: str, raw: str, tz: tzinfo, key: str) -> datetime:
    """A date string as Ruby's Time.parse reads it (the forms listed above)."""
    return _usual(raw.strip()) or _time_parse(path, raw, tz, key)


def _time_parse(path: str, raw: str, tz: tzinfo, key: str) -> datetime:
    """The general reading of a date string: each form of Time.parse."""
    text = raw.strip()
    found = _find_date(text)
    if found is None:
        raise PostError(path, f"{key} is not a date: {raw[:60]!r}")
    (year, month, day), rest = found
    hour = minute = second = micro = 0
    zone: tzinfo | None = None
    clock = _TIME.search(rest)
    if clock is not None and clock.group("h") is not None:
        hour, minute, second, micro = _clock(path, raw, clock, key)
        zone = _zone(path, raw, clock.group("zone"), tz, year, key)
        rest = rest[:clock.start()] + " " + rest[clock.end():]
    if not _LEFTOVER.match(rest):
        raise PostError(path, f"{key} is not a date Ruby reads without guessing: "
                        f"{raw[:60]!r}")
    try:
        naive = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as e:
        raise PostError(path, f"{key} is not a valid date: {raw!r} ({e})") from None
    return naive.replace(tzinfo=zone) if zone is not None else local_time(naive, tz)


def _find_date(text: str) -> tuple[tuple[int, int, int], str] | None:
    """((year, month, day), the text without the date) of the first date form found."""
    for pattern in _DATES:
        match = pattern.search(text)
        if match is None:
            continue
        groups = match.groupdict()
        if "mon" in groups:
            month = MONTHS.get(groups["mon"].lower())
            if month is None:
                continue
        else:
            month = int(groups["mo"])
        year = int(groups["y"])
        if len(groups["y"]) == 2:
            year += 1900 if year >= 69 else 2000  # Ruby's two-digit years
        return (year, month, int(groups["d"])), text[:match.start()] + " " + text[match.end():]
    return None


def _clock(path: str, raw: str, match: re.Match[str], key: str) -> tuple[int, int, int, int]:
    """(hour, minute, second, microsecond) of a time of day, with AM/PM applied."""
    hour = int(match.group("h"))
    minute, second = int(match.group("m") or 0), int(match.group("s") or 0)
    micro = int((match.group("f") or "0")[:6].ljust(6, "0"))
    half = (match.group("ap") or "").lower()
    if half and hour <= 12:
        hour = hour % 12 + (12 if half == "p" else 0)
    if hour > 23 or minute > 59 or second > 60:
        raise PostError(path, f"{key} has an impossible time of day: {raw!r}")
    return hour, minute, min(second, 59), micro


def _zone(path: str, raw: str, name: str | None, tz: tzinfo, year: int,
          key: str) -> tzinfo | None:
    """The zone an offset or a name gives, as Ruby's Time.zone_offset reads it; None
    (local time) for none, or for a name Ruby does not know."""
    if not name:
        return None
    if name[0] in "+-":
        digits = name[1:].replace(":", "")
        if len(digits) not in (2, 4):
            return None  # '+5': not an offset to Time.parse
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise PostError(path, f"{key} has an impossible offset: {raw!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if name[0] == "-" else delta)
    hours_off = ZONE_HOURS.get(name.lower())
    if hours_off is not None:
        return UTC if hours_off == 0 else timezone(timedelta(hours=hours_off))
    for month in (1, 7):
        probe = datetime(year, month, 1, tzinfo=tz)
        if (probe.tzname() or "").lower() == name.lower():
            offset = probe.utcoffset()
            return timezone(offset) if offset is not None else None
    return None
