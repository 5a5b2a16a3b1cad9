"""The Prometheus scrape endpoint."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.common import in_thread
from service.metrics import StoreMetrics
from service.progress import followers_of


@get(
    "/metrics",
    operation_id="metrics",
    summary="Metrics in the Prometheus text format",
    description=(
        "Requests and latency by route template, events appended, view lag, the webhook queue and delivery failures. "
        "Open like /health: it names no negotiation and no key; restrict it at the proxy where that matters."
    ),
    tags=["operations"],
    media_type=MediaType.TEXT,
    response_description="The Prometheus text exposition format.",
)
async def metrics(request: Request[Any, Any, Any]) -> Response[str]:
    state = request.app.state
    database = StoreMetrics(state.log, followers_of(state), state.webhooks.clock)
    body = await in_thread(state.metrics.exposition, database)
    # litestar adds the charset itself
    return Response(body.decode(), media_type=CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8"))
