"""What every query takes and gives in pages: world dates, recording times, cursors, and the page itself."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec

from events.errors import InvalidQueryError
from events.payloads import FIRST_WORLD_DATE, LAST_WORLD_DATE, WORLD_DATE_RANGE

T = TypeVar("T")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A '+' in an unencoded query string arrives as a space; the offset it began is still unambiguous.
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(?:([Zz])|([+\- ])(\d{2}:\d{2}))")
_CURSOR_DETAIL = "the cursor is not one this service gave out"


class Page(msgspec.Struct, frozen=True):
    items: list[Any]
    next: str | None


def parse_date(value: str | None, field: str) -> dt.date | None:
    """A world date, in the range event bodies accept."""
    if value is None:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
        if not FIRST_WORLD_DATE <= day <= LAST_WORLD_DATE:
            raise ValueError(value)
    except ValueError:
        raise InvalidQueryError(field, f"must be a date YYYY-MM-DD {WORLD_DATE_RANGE}") from None
    return day


D = TypeVar("D", bound=dt.date)


def ordered(start: D | None, end: D | None, fields: tuple[str, str] = ("from", "to"), max_days: int | None = None) -> None:
    """A range a query may work through: `end` not before `start`, and at most `max_days` days apart.

    Checked on the parameters alone, so an over-large range is refused before anything is read or folded.
    """
    if start is None or end is None:
        return
    first, last = fields
    if end < start:
        raise InvalidQueryError(last, f"must be on or after {first}", f"{last} {end.isoformat()} is before {first} {start.isoformat()}")
    if max_days is not None and (days := (end - start).days) > max_days:
        raise InvalidQueryError(
            first, f"must be at most {max_days:,} days before {last}",
            f"{first}={start.isoformat()} and {last}={end.isoformat()} are {days:,} days apart; the limit is {max_days:,} days",
            fields=((first, f"must be at most {max_days:,} days before {last}"), (last, f"must be at most {max_days:,} days after {first}")),
        )


def parse_world_range(start: str | None, end: str | None, max_days: int | None = None) -> tuple[dt.date | None, dt.date | None]:
    """`from` and `to` as world dates, in order and at most `max_days` apart (InvalidQueryError naming both otherwise)."""
    first, last = parse_date(start, "from"), parse_date(end, "to")
    ordered(first, last, max_days=max_days)
    return first, last


def parse_timestamp(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    found = _TIMESTAMP.fullmatch(value)
    if found is None:
        raise InvalidQueryError(field, "must be an RFC 3339 timestamp with an offset, e.g. 2025-08-12T09:30:00Z")
    day, clock, zulu, sign, offset = found.groups()
    # Python keeps microseconds; finer digits cannot change which events were recorded by then.
    clock = re.sub(r"(\.\d{1,6})\d*", r"\1", clock)
    zone = "+00:00" if zulu else f"{'-' if sign == '-' else '+'}{offset}"
    try:
        return dt.datetime.fromisoformat(f"{day}T{clock}{zone}").astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise InvalidQueryError(field, "is not a valid time between years 0001 and 9999") from None


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"p{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, field: str = "cursor") -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("p"):
            raise ValueError(cursor)
        value = int(text[1:])
        if value < 0 or value > 2**62:
            raise ValueError(cursor)
    except ValueError:
        raise InvalidQueryError(field, "unknown cursor", _CURSOR_DETAIL) from None
    return value


def encode_name_cursor(last: str) -> str:
    """A cursor after `last` for lists ordered by a name or an id."""
    return base64.urlsafe_b64encode(f"s{last}".encode()).decode().rstrip("=")


def decode_name_cursor(cursor: str | None) -> str:
    if cursor is None:
        return ""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("s"):
        raise InvalidQueryError("cursor", "unknown cursor", _CURSOR_DETAIL)
    return text[1:]


def peek(found: list[T], limit: int, cursor: Callable[[T], str]) -> tuple[list[T], str | None]:
    """A page of `limit` from up to `limit + 1` items: the extra one only says that more follow, so `next` never leads nowhere."""
    page = found[:limit]
    return page, (cursor(page[-1]) if len(found) > limit else None)


def world_key(occurred_on: dt.date, version: int) -> int:
    """A cursor value that sorts like (occurred_on, version); fits the cursor's 2**62 bound."""
    return occurred_on.toordinal() << 40 | version


def world_page(keyed: Iterable[tuple[int, Any]], after: int | None, limit: int) -> tuple[list[Any], str | None]:
    rest = [(key, item) for key, item in keyed if after is None or key > after]
    page = rest[:limit]
    return [item for _, item in page], (encode_cursor(page[-1][0]) if len(rest) > limit else None)


def choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        message = f"must be one of {', '.join(allowed)}"
        raise InvalidQueryError(field, message, f"{field}: {message}, not {value!r}")
    return value
