"""The Prometheus scrape endpoint."""

from __future__ import annotations

from litestar import MediaType, Response
from service.http.routes import get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST

from events.application import ParleyLog
from service.http.metrics import AnswerCacheMetrics, Metrics, StoreMetrics
from service.http.reads import Reads
from service.queries.progress import Followers
from service.webhooks import Webhooks


@get(
    "/metrics",
    operation_id="metrics",
    summary="Metrics in the Prometheus text format",
    description=(
        "Requests and latency by route template, events appended, view lag, the webhook queue and delivery failures, "
        "and the answer cache of the worker that answers (bytes, bound, entries, hits, misses; labelled by its pid). "
        "Open like /health: it names no negotiation and no key; restrict it at the proxy where that matters."
    ),
    tags=["operations"],
    media_type=MediaType.TEXT,
    response_description="The Prometheus text exposition format.",
    sync_to_thread=True,
)
def metrics(
    log: NamedDependency[ParleyLog], followers: NamedDependency[Followers], webhooks: NamedDependency[Webhooks],
    metrics: NamedDependency[Metrics], reads: NamedDependency[Reads],
) -> Response[str]:
    collectors = [StoreMetrics(log, followers, webhooks.clock)]
    if reads.answers is not None:
        collectors.append(AnswerCacheMetrics(reads.answers))  # type: ignore[arg-type]
    body = metrics.exposition(*collectors)
    # litestar adds the charset itself
    return Response(body.decode(), media_type=CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8"))
