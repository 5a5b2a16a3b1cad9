"""Across negotiations: deadlines and measures, served from the persisted views."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import QueryParameter

from service.followers.views import ViewRunner, ViewTables
from service.followers.tables import DEADLINES, MEASURES, ViewSpec
from service.api.common import (
    Page,
    beyond_head,
    decode_cursor,
    encode_cursor,
    in_thread,
    log_of,
    problems,
)
from service.api.negotiations import Limit
from service.auth import require
from service.problems import FieldError, ProblemError
from service.reads import replica_view

MinPosition = Annotated[
    int | None,
    QueryParameter(
        ge=0, le=2**62,
        description="Wait (PARLEY_MIN_POSITION_WAIT, 5 s) until the view includes this position, else 503; 422 past the log's head.",
    ),
]


async def _view_at(request: Request[Any, Any, Any], spec: ViewSpec, min_position: int | None) -> ViewRunner:
    runner: ViewRunner = request.app.state.runners[spec.name]
    wait = request.app.state.settings.min_position_wait
    if min_position is not None and min_position > (head := await in_thread(request.app.state.log.head)):
        raise beyond_head(min_position, head)  # no write has answered that position: waiting would not bring it
    if min_position is not None and not await in_thread(runner.wait, min_position, wait):
        raise ProblemError(
            503, "View behind", f"the {spec.name} view has not reached position {min_position} yet; retry shortly",
            [FieldError("min_position", f"the view is at {await in_thread(runner.tables.position, spec)}")],
            {"Retry-After": "1"},
        )
    return runner


async def _view_tables(request: Request[Any, Any, Any], spec: ViewSpec, min_position: int | None) -> ViewTables:
    """The replica's copy of the view when it can answer (see service/reads.py), else the primary's runner's."""
    tables = await replica_view(request, spec, min_position)
    return tables if tables is not None else (await _view_at(request, spec, min_position)).tables


def _page(rows: list[dict[str, Any]], offset: int, limit: int) -> Page:
    items = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return Page(items=items, next=encode_cursor(offset + limit) if more else None)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if k != "next_change_on"}, "because": msgspec.json.decode(row["because"])}


class OverviewController(Controller):
    path = "/v1"
    tags = ["across negotiations"]

    @get(
        "/deadlines",
        operation_id="listDeadlines",
        summary="Deadlines across negotiations, soonest first",
        guards=[require("reader")],
        responses=problems(422),
    )
    async def list_deadlines(
        self,
        request: Request[Any, Any, Any],
        due_after: dt.date | None = None,
        due_before: dt.date | None = None,
        negotiation: str | None = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        tables = await _view_tables(request, DEADLINES, min_position)
        where, params = [], []
        if due_after:
            where.append("due_on > ?")
            params.append(due_after.isoformat())
        if due_before:
            where.append("due_on < ?")
            params.append(due_before.isoformat())
        if negotiation:
            where.append("negotiation_id = ?")
            params.append(negotiation)
        rows = await in_thread(tables.rows, DEADLINES, " AND ".join(where), params, "due_on, negotiation_id, deadline_id")
        today = log_of(request).clock().astimezone(dt.UTC).date()
        for row in rows:
            due, lapses_on = dt.date.fromisoformat(row["due_on"]), dt.date.fromisoformat(row["lapses_on"])
            row["days_remaining"] = (due - today).days if lapses_on > today and not row["resolved_on"] else None
            row["extensions"] = int(row["extensions"])
            record_through = row.pop("record_through")
            row["coverage"] = {
                "record_through": record_through,
                "beyond_record": record_through is not None and today.isoformat() > record_through,
            }
        return _page([_decoded(r) for r in rows], decode_cursor(cursor) or 0, limit)

    @get(
        "/measures",
        operation_id="listMeasures",
        summary="Measures across negotiations, with what applies today",
        guards=[require("reader")],
        responses=problems(422),
    )
    async def list_measures(
        self,
        request: Request[Any, Any, Any],
        imposed_by: str | None = None,
        applies_to: str | None = None,
        kind: str | None = None,
        in_force: bool | None = None,
        negotiation: str | None = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        tables = await _view_tables(request, MEASURES, min_position)
        where, params = [], []
        for column, value in (("imposed_by", imposed_by), ("applies_to", applies_to), ("kind", kind), ("negotiation_id", negotiation)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if in_force is not None:
            where.append("in_force = ?")
            params.append(int(in_force))
        rows = await in_thread(tables.rows, MEASURES, " AND ".join(where), params, "negotiation_id, imposed_by, applies_to, measure_id")
        for row in rows:
            row["in_force"] = bool(row["in_force"])
        return _page([_decoded(r) for r in rows], decode_cursor(cursor) or 0, limit)

