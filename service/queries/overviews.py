"""Across negotiations: deadlines and measures, served from the persisted views."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec

from events.application import ParleyLog
from events.errors import PositionNotRecordedError, ViewBehindError
from service.followers.tables import DEADLINES, MEASURES, ViewSpec
from service.followers.views import ViewRunner, ViewTables
from service.queries.params import Page, encode_cursor
from service.queries.store import ReadStore


def view_tables(
    replica: ReadStore | None, runner: ViewRunner, log: ParleyLog, spec: ViewSpec, min_position: int | None, wait: float
) -> ViewTables:
    """The replica's copy of a view when it can answer, else the primary's, once its runner has reached `min_position`.

    PositionNotRecordedError past the log's head (waiting would not bring it); ViewBehindError after `wait` seconds.
    """
    if replica is not None and replica.tables is not None:
        return replica.tables
    if min_position is not None and min_position > (head := log.head()):
        raise PositionNotRecordedError(min_position, head)
    if min_position is not None and not runner.wait(min_position, wait):
        raise ViewBehindError(spec.name, min_position, runner.tables.position(spec))
    return runner.tables


def _page(rows: list[dict[str, Any]], offset: int, limit: int) -> Page:
    items = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return Page(items=items, next=encode_cursor(offset + limit) if more else None)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if k != "next_change_on"}, "because": msgspec.json.decode(row["because"])}


@dataclasses.dataclass(frozen=True)
class DeadlineFilter:
    due_after: dt.date | None = None
    due_before: dt.date | None = None
    negotiation: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        where, params = [], []
        if self.due_after:
            where.append("due_on > ?")
            params.append(self.due_after.isoformat())
        if self.due_before:
            where.append("due_on < ?")
            params.append(self.due_before.isoformat())
        if self.negotiation:
            where.append("negotiation_id = ?")
            params.append(self.negotiation)
        return " AND ".join(where), params


def deadlines_page(tables: ViewTables, keep: DeadlineFilter, today: dt.date, offset: int, limit: int) -> Page:
    """Deadlines across negotiations, soonest first, with the days left from `today` and where each record ends."""
    where, params = keep.sql()
    rows = tables.rows(DEADLINES, where, params, "due_on, negotiation_id, deadline_id")
    for row in rows:
        due, lapses_on = dt.date.fromisoformat(row["due_on"]), dt.date.fromisoformat(row["lapses_on"])
        row["days_remaining"] = (due - today).days if lapses_on > today and not row["resolved_on"] else None
        row["extensions"] = int(row["extensions"])
        record_through = row.pop("record_through")
        row["coverage"] = {
            "record_through": record_through,
            "beyond_record": record_through is not None and today.isoformat() > record_through,
        }
    return _page([_decoded(r) for r in rows], offset, limit)


@dataclasses.dataclass(frozen=True)
class MeasureFilter:
    imposed_by: str | None = None
    applies_to: str | None = None
    kind: str | None = None
    in_force: bool | None = None
    negotiation: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        where, params = [], []
        columns = (("imposed_by", self.imposed_by), ("applies_to", self.applies_to), ("kind", self.kind), ("negotiation_id", self.negotiation))
        for column, value in columns:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if self.in_force is not None:
            where.append("in_force = ?")
            params.append(int(self.in_force))
        return " AND ".join(where), params


def measures_page(tables: ViewTables, keep: MeasureFilter, offset: int, limit: int) -> Page:
    """Measures across negotiations, with what applies today."""
    where, params = keep.sql()
    rows = tables.rows(MEASURES, where, params, "negotiation_id, imposed_by, applies_to, measure_id")
    for row in rows:
        row["in_force"] = bool(row["in_force"])
    return _page([_decoded(r) for r in rows], offset, limit)
