"""Across negotiations: deadlines and measures, served from the persisted views."""

from __future__ import annotations

import datetime as dt

from litestar import Controller
from service.http.routes import get
from litestar.di import NamedDependency

from events.application import ParleyLog
from service.followers.tables import DEADLINES, MEASURES
from service.followers.views import ViewRunner
from service.http.auth import require
from service.http.params import Limit, ViewPosition
from service.http.reads import Reads
from service.http.requests import problems
from service.queries.overviews import DeadlineFilter, MeasureFilter, deadlines_page, measures_page, view_tables
from service.queries.params import Page, decode_cursor
from service.settings import Settings


class OverviewController(Controller):
    path = "/v1"
    tags = ["across negotiations"]

    @get(
        "/deadlines",
        operation_id="listDeadlines",
        summary="Deadlines across negotiations, soonest first",
        guards=[require("reader")],
        responses=problems(422),
        sync_to_thread=True,
    )
    def list_deadlines(
        self,
        reads: NamedDependency[Reads],
        log: NamedDependency[ParleyLog],
        runners: NamedDependency[dict[str, ViewRunner]],
        settings: NamedDependency[Settings],
        now: NamedDependency[dt.datetime],
        due_after: dt.date | None = None,
        due_before: dt.date | None = None,
        negotiation: str | None = None,
        min_position: ViewPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        offset = decode_cursor(cursor) or 0
        replica = reads.view(DEADLINES, min_position)
        tables = view_tables(replica, runners[DEADLINES.name], log, DEADLINES, min_position, settings.min_position_wait)
        return deadlines_page(tables, DeadlineFilter(due_after, due_before, negotiation), now.date(), offset, limit)

    @get(
        "/measures",
        operation_id="listMeasures",
        summary="Measures across negotiations, with what applies today",
        guards=[require("reader")],
        responses=problems(422),
        sync_to_thread=True,
    )
    def list_measures(
        self,
        reads: NamedDependency[Reads],
        log: NamedDependency[ParleyLog],
        runners: NamedDependency[dict[str, ViewRunner]],
        settings: NamedDependency[Settings],
        imposed_by: str | None = None,
        applies_to: str | None = None,
        kind: str | None = None,
        in_force: bool | None = None,
        negotiation: str | None = None,
        min_position: ViewPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        offset = decode_cursor(cursor) or 0
        replica = reads.view(MEASURES, min_position)
        tables = view_tables(replica, runners[MEASURES.name], log, MEASURES, min_position, settings.min_position_wait)
        return measures_page(tables, MeasureFilter(imposed_by, applies_to, kind, in_force, negotiation), offset, limit)
