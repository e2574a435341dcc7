"""Front-matter dates, read as Jekyll 4.3 (Ruby's Psych and Time) reads them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from .text import PostError

DATE_STRING = re.compile(
    r"^\s*(\d{1,4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt ]\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)
MIN_YEAR, MAX_YEAR = 1000, 9998

# Dates are written with their own offset when it is one a real zone uses: whole minutes
# from -12:00 to +14:00. Any other (a typo like +23:00; one below -12:00, which jing's
# xsd:dateTime rejects past -13:00; a zone's local mean time with seconds, such as
# Asia/Kolkata's +05:53:28 in 1800, which RFC 3339 cannot write) keeps its instant,
# shown in UTC.
MIN_OFFSET = timedelta(hours=-12)
MAX_OFFSET = timedelta(hours=14)


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
    in the site zone; an explicit offset is kept.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            try:
                return _check_year(path, value.replace(tzinfo=UTC).astimezone(tz))
            except OverflowError:
                raise PostError(path, f"{key} {value} is out of range") from None
        return _check_year(path, value)
    if isinstance(value, date):
        return _check_year(path, datetime(value.year, value.month, value.day, tzinfo=tz))
    if isinstance(value, str):
        match = DATE_STRING.match(value)
        if match:
            return _check_year(path, _from_match(path, value, match, tz, key))
    raise PostError(path, f"{key} is not a date: {str(value)[:60]!r}")


def _zone(path: str, raw: str, offset: str | None, tz: tzinfo, key: str) -> tzinfo:
    """The zone a date string's offset names; the site zone when it names none."""
    if not offset:
        return tz
    if offset.upper() in {"Z", "UTC", "GMT"}:
        return UTC
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise PostError(path, f"{key} has an impossible offset: {raw!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if offset[0] == "-" else delta)


def _from_match(path: str, raw: str, match: re.Match[str], tz: tzinfo, key: str) -> datetime:
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = _zone(path, raw, offset, tz, key)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day),
            int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=zone,
        )
    except ValueError as e:
        raise PostError(path, f"{key} is not a valid date: {raw!r} ({e})") from None
