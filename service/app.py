"""The composition root: `create_app(settings)` builds the whole service."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from events.application import Clock, utcnow
from service.queries.live import LiveStates
from service.followers.heads import StreamHeads
from service.followers.views import open_runners, open_view_tables
from service.api.audit import AuditController
from service.api.claims import ClaimController
from service.api.events import EventController
from service.api.export import ExportController
from service.api.health import health, ready
from service.api.keys import KeyController
from service.api.metrics import metrics as metrics_route
from service.api.negotiations import NegotiationController
from service.api.openapi import api_docs, document_request_bodies, swagger_assets
from service.api.overview import OverviewController
from service.api.sources import SourceController
from service.api.state import StateController
from service.api.webhooks import WebhookController
from service.auth import KeyStore
from service.http.budgets import BodyBudget
from service.http.edge import Edge
from service.http.metrics import Metrics
from service.http.problems import EXCEPTION_HANDLERS
from service.http.ratelimit import RateLimits
from service.http.dependencies import DEPENDENCIES
from service.http.requests import refuse_odd_urls
from service.queries.answers import Answers
from service.queries.store import ReadStore, open_read_sides
from service.stores import open_log
from service.settings import Settings
from service.signing import Signer
from service.web import web_router
from service.webhooks import checkpoint_of, open_webhooks


def create_app(settings: Settings, *, clock: Clock = utcnow, resolver: Any = None, connect: Any = None) -> Litestar:
    """The whole service; `resolver` and `connect` let tests see every outbound connection webhooks try."""
    settings.check_read_database()
    metrics = Metrics(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # litestar runs synchronous handlers on the loop's default executor
        handlers = ThreadPoolExecutor(settings.threads, thread_name_prefix="parley-handler")
        asyncio.get_running_loop().set_default_executor(handlers)
        log = open_log(settings, clock)
        app.state.log = log
        metrics.count_appends(log)
        app.state.key_store = KeyStore(log)
        heads = StreamHeads(log) if settings.answer_cache_bytes else None
        app.state.states = LiveStates(log, heads)
        app.state.signer = Signer.load(settings.signing_key, settings.signing_key_file)
        tables = open_view_tables(log)
        app.state.runners = open_runners(log, tables)
        app.state.reads = open_read_sides(settings, ReadStore("primary", log, app.state.states, tables), clock)
        app.state.answers = Answers(
            settings.answer_cache_bytes, heads, lambda: log.clock().astimezone(dt.UTC), inline=not settings.is_postgres
        )
        if heads is not None:
            heads.start()
        app.state.webhooks = open_webhooks(
            log, secret_key=app.state.signer.derive_key("parley webhook secrets"), clock=clock,
            allow_hosts=settings.allow_hosts, warn_days=settings.warn_days, timeout=settings.webhook_timeout, lease_seconds=settings.webhook_lease,
            checkpoint=checkpoint_of(log, app.state.signer), checkpoint_every=settings.checkpoint_every,
            checkpoint_hours=settings.checkpoint_hours,
            resolver=resolver, connect=connect,
        )
        if settings.run_projections:
            for runner in app.state.runners.values():
                runner.start(lease_poll=settings.lease_poll)
        if settings.run_webhooks:
            app.state.webhooks.start(lease_poll=settings.lease_poll)
        try:
            yield
        finally:
            if heads is not None:
                heads.stop()
            app.state.webhooks.stop()
            for runner in app.state.runners.values():
                runner.stop()
            app.state.reads.close()
            app.state.key_store.close()
            tables.datastore.close()  # type: ignore[attr-defined]
            log.close()
            handlers.shutdown(wait=False)

    limits = RateLimits(settings, clock)
    app = Litestar(
        route_handlers=[NegotiationController, StateController, EventController, KeyController, OverviewController, AuditController, ExportController, WebhookController, SourceController, ClaimController, health, ready, metrics_route, web_router, swagger_assets],
        lifespan=[lifespan, limits.lifespan],
        middleware=[Edge(limits, metrics, BodyBudget(settings.body_read_timeout)).middleware],
        guards=[refuse_odd_urls],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        state=State({"settings": settings, "metrics": metrics}),
        openapi_config=OpenAPIConfig(
            title="Parley",
            version="1.0.0",
            description="Event-sourced negotiation timelines.",
            path="/schema",
            render_plugins=[api_docs()],
        ),
        debug=False,
        logging_config=None,
    )
    document_request_bodies(app)
    return app


def app_from_env() -> Litestar:
    """The app from PARLEY_* variables: the factory every server worker process calls (`service.app:app_from_env`)."""
    from service.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
