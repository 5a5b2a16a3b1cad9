"""The web page (timeline, as-of state panel, tariff chart) and the tariff chart as SVG/PNG.

The page is one server-rendered HTML file with plain JavaScript and CSS (no build step, no
third-party library): it reads the negotiation through the public API, with the same read rules
as any other client. `web_router` carries the page, its static files and the chart routes.
"""

from __future__ import annotations

import hashlib
import string
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.static_files import create_static_files_router

from events.payloads import NegotiationOpened
from service.api.common import in_thread, problems
from service.api.state import (
    KnownAt,
    LegalBasis,
    WorldFrom,
    WorldTo,
    _now,
    parse_date,
    parse_timestamp,
    time_limit,
)
from service.auth import require
from service.problems import FieldError, Problem, ProblemError
from service.reads import ReadStore, read
from service.web.chart import (
    MAX_DAYS,
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
    "The range defaults to the first event through a month after the last date the record names."
)


def _title(state: Any) -> str:
    opened = next((r.event for r in state.records if isinstance(r.event, NegotiationOpened)), None)
    return opened.title if opened is not None else state.negotiation_id or ""


async def _chart(
    request: Request[Any, Any, Any],
    negotiation_id: str,
    known_at: str | None,
    legal_basis: str | None,
    from_: str | None,
    to: str | None,
    width: int,
    height: int,
) -> Any:
    start, end = parse_date(from_, "from"), parse_date(to, "to")
    at = parse_timestamp(known_at, "known_at") or await _now(request, None)
    if start and end and end < start:
        raise ProblemError(400, "Bad request", "to: must be on or after from", [FieldError("to", "must be on or after from")])

    limit = time_limit(request)

    def build(store: ReadStore) -> Any:
        state = store.states.state(negotiation_id, limit)
        data = chart_data(state, at, title=_title(state), start=start, end=end, legal_basis=legal_basis, time_limit=limit)
        if (data.end - data.start).days > MAX_DAYS:
            raise ProblemError(
                400, "Bad request", f"the range may span at most {MAX_DAYS} days",
                [FieldError("to", f"must be at most {MAX_DAYS} days after from")],
            )
        return tariff_chart(data, width, height)

    return await read(request, build)


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
    )
    async def tariffs_svg(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        known_at: KnownAt = None,
        legal_basis: LegalBasis = None,
        from_: WorldFrom = None,
        to: WorldTo = None,
        width: Width = 960,
        height: Height = 440,
    ) -> Response[str]:
        figure = await _chart(request, negotiation_id, known_at, legal_basis, from_, to, width, height)
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
    )
    async def tariffs_png(
        self,
        request: Request[Any, Any, Any],
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
        figure = await _chart(request, negotiation_id, known_at, legal_basis, from_, to, width, height)
        return Response(await in_thread(to_png, figure), media_type="image/png")


web_router = Router(path="/", route_handlers=[PageController, static_router, ChartController])

__all__ = ["CSP", "ChartController", "PageController", "web_router"]
