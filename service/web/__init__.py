"""The web page (timeline, as-of state panel, tariff chart) and the tariff chart as SVG/PNG.

The page is one server-rendered HTML file with plain JavaScript and CSS (no build step, no
third-party library): it reads the negotiation through the public API, with the same read rules
as any other client. `web_router` carries the page, its static files and the chart routes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import string
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, MediaType, Response, Router
from service.http.routes import get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.static_files import create_static_files_router

from events.payloads import NegotiationOpened
from service.http.auth import require
from service.http.params import KnownAt, LegalBasis, WorldFrom, WorldTo
from service.http.problems import Problem, ProblemError
from service.http.reads import Reads
from service.http.requests import problems
from service.queries.params import parse_timestamp, parse_world_range
from service.queries.store import ReadStore
from service.queries.timelimit import TimeLimit
from service.web.chart import (
    LOOKAHEAD_YEARS,
    MAX_DAYS,
    Figure,
    chart_data,
    png_available,
    tariff_chart,
    to_png,
    to_svg,
)

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

# The page loads nothing from anywhere else; the API is on the same origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@cache
def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@cache
def _page() -> str:
    template = string.Template((TEMPLATES / "index.html").read_text(encoding="utf-8"))
    return template.substitute(static="/static/web", version=_asset_version())


class PageController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML, sync_to_thread=False)
    def page(self) -> Response[str]:
        return Response(
            _page(),
            media_type=MediaType.HTML,
            headers={
                "Content-Security-Policy": CSP,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )


static_router = create_static_files_router(
    path="/static/web", directories=[STATIC], name="web-static", include_in_schema=False
)


# --- the tariff chart ------------------------------------------------------------------------

Width = Annotated[int, QueryParameter(ge=480, le=2400, description="Width in CSS pixels.")]
Height = Annotated[int, QueryParameter(ge=240, le=1600, description="Height in CSS pixels.")]

_CHART_DESCRIPTION = (
    "The total additional tariff in force per direction (`total_additional_pct` of the tariff schedule, "
    "evaluated on every day of the range) as a step chart, with bands for negotiating rounds and dashed lines "
    "for truce changes; each step carries a tooltip naming the measures in force and the events behind them. "
    f"`from` and `to` span at most {MAX_DAYS:,} days (a 400 naming both otherwise, before any day is evaluated). "
    "The range defaults to the first event through a month after the last date the record names, retracted "
    f"events left out, ending at most {LOOKAHEAD_YEARS} years after the record's last dated event and keeping its "
    f"latest {MAX_DAYS:,} days; a bound left out is taken from that default, within {MAX_DAYS:,} days of the one given."
)


def _title(state: Any) -> str:
    opened = next((r.event for r in state.records if isinstance(r.event, NegotiationOpened)), None)
    return opened.title if opened is not None else state.negotiation_id or ""


def chart(
    store: ReadStore, negotiation_id: str, known_at: dt.datetime, legal_basis: str | None,
    start: dt.date | None, end: dt.date | None, width: int, height: int, time_limit: TimeLimit,
) -> Figure:
    """The tariff chart of what was known at `known_at`, on a range `chart_range` has checked."""
    state = store.states.state(negotiation_id, time_limit)
    data = chart_data(state, known_at, title=_title(state), start=start, end=end, legal_basis=legal_basis, time_limit=time_limit)
    return tariff_chart(data, width, height)


def chart_range(from_: str | None, to: str | None) -> tuple[dt.date | None, dt.date | None]:
    """`from` and `to`, refused (400 naming both and the limit) when they span more than MAX_DAYS: before anything is read."""
    return parse_world_range(from_, to, max_days=MAX_DAYS)


class ChartController(Controller):
    path = "/v1/negotiations"
    tags = ["charts"]  # noqa: RUF012 - litestar reads it as a class attribute

    @get(
        "/{negotiation_id:str}/charts/tariffs.svg",
        operation_id="getTariffChartSvg",
        summary="The total additional tariff per direction over time, as an SVG step chart",
        description=_CHART_DESCRIPTION,
        media_type="image/svg+xml",
        guards=[require("reader")],
        responses=problems(404),
        sync_to_thread=True,
    )
    def tariffs_svg(
        self,
        reads: NamedDependency[Reads],
        now: NamedDependency[dt.datetime],
        budget: NamedDependency[TimeLimit],
        negotiation_id: str,
        known_at: KnownAt = None,
        legal_basis: LegalBasis = None,
        from_: WorldFrom = None,
        to: WorldTo = None,
        width: Width = 960,
        height: Height = 440,
    ) -> Response[str]:
        (start, end), at = chart_range(from_, to), parse_timestamp(known_at, "known_at") or now
        figure = reads.answer(None, chart, negotiation_id, at, legal_basis, start, end, width, height, budget)
        return Response(to_svg(figure), media_type="image/svg+xml", headers={"X-Content-Type-Options": "nosniff"})

    @get(
        "/{negotiation_id:str}/charts/tariffs.png",
        operation_id="getTariffChartPng",
        summary="The total additional tariff per direction over time, as a PNG step chart (twice the size in pixels)",
        description=_CHART_DESCRIPTION + " Needs Pillow on the server; 501 without it.",
        media_type="image/png",
        guards=[require("reader")],
        responses={
            **problems(404),
            501: ResponseSpec(
                data_container=Problem, description="PNG rendering is not installed on this server (Pillow).",
                media_type="application/problem+json",
            ),
        },
        sync_to_thread=True,
    )
    def tariffs_png(
        self,
        reads: NamedDependency[Reads],
        now: NamedDependency[dt.datetime],
        budget: NamedDependency[TimeLimit],
        negotiation_id: str,
        known_at: KnownAt = None,
        legal_basis: LegalBasis = None,
        from_: WorldFrom = None,
        to: WorldTo = None,
        width: Width = 960,
        height: Height = 440,
    ) -> Response[bytes]:
        if not png_available():
            raise ProblemError(
                501, "Not implemented", "PNG charts need Pillow on the server; the SVG chart is at charts/tariffs.svg"
            )
        (start, end), at = chart_range(from_, to), parse_timestamp(known_at, "known_at") or now
        figure = reads.answer(None, chart, negotiation_id, at, legal_basis, start, end, width, height, budget)
        return Response(to_png(figure), media_type="image/png")


web_router = Router(path="/", route_handlers=[PageController, static_router, ChartController])

__all__ = ["CSP", "ChartController", "PageController", "web_router"]
