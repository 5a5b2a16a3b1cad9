"""What every routed request passes through, in one ASGI middleware: its id, rate limit, body budget, metrics and log line.

One wrapper, not four nested ones, so the order reads in one place: the id first (a 429 carries it too), then
the limit, then the route with the body's time budget, and the metrics and the log line when the request has
ended, whatever became of it. Each concern keeps its own module (logs, ratelimit, budgets, metrics).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.http.budgets import BodyBudget
from service.http.logs import answer_headers, log_request, request_id_of
from service.http.metrics import Metrics
from service.http.ratelimit import RateLimits


class Edge:
    def __init__(self, limits: RateLimits, metrics: Metrics, budget: BodyBudget) -> None:
        self.limits, self.metrics, self.budget = limits, metrics, budget

    def middleware(self, app: ASGIApp) -> ASGIApp:
        limits, metrics, budget = self.limits, self.metrics, self.budget
        proxy = structlog.get_logger("parley.http")
        bound: list[Any] = []  # the logger as configured, bound at the first request (configured by then)

        async def edge(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            state = scope.setdefault("state", {})  # type: ignore[typeddict-item]
            state["request_id"] = request_id_of(scope)
            started = time.perf_counter()
            status = 500
            limited: list[tuple[bytes, bytes]] = []

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", []), *answer_headers(state), *limited]
                await send(message)

            try:
                admitted = await limits.admit(scope, send_with_headers)
                if admitted is not None:
                    limited += admitted
                    await app(scope, budget.receive(receive, state), send_with_headers)
            finally:
                seconds = time.perf_counter() - started
                metrics.observe(scope, status, seconds)
                if not bound:
                    bound.append(proxy.bind())
                log = bound[0]
                if log.is_enabled_for(logging.INFO):  # the line's fields are not worth gathering for a filtered call
                    log_request(log, scope, state, status, seconds)

        return edge
