"""What route handlers receive as litestar dependencies: the app's parts, built once in create_app, and per-request ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from events.application import ParleyLog
from service.auth import KeyStore, Principal
from service.followers.views import ViewRunner
from service.http.metrics import Metrics
from service.http.reads import Reads
from service.http.requests import raw_header
from service.queries.progress import Followers, followers_of
from service.queries.sources import SourceRegistry
from service.queries.timelimit import TimeLimit
from service.settings import Settings
from service.signing import Signer
from service.webhooks import Webhooks
from service.webhooks.admin import WebhookAdmin


def _log(state: State) -> ParleyLog:
    return state.log  # type: ignore[no-any-return]


def _settings(state: State) -> Settings:
    return state.settings  # type: ignore[no-any-return]


def _reads(request: Request[Any, Any, Any]) -> Reads:
    state = request.app.state
    return Reads(
        state.reads, request.scope["state"], state.answers, raw_header(request.scope, b"if-none-match"), state.settings.public_read,
        TimeLimit.starting_now(state.settings.query_timeout),
    )


def _now(state: State) -> dt.datetime:
    """The log's clock, in UTC: what "today" and "now" mean to this request."""
    return state.log.clock().astimezone(dt.UTC)  # type: ignore[no-any-return]


def _budget(state: State) -> TimeLimit:
    """How long this request's answer may compute from now (PARLEY_QUERY_TIMEOUT); past it, a 503."""
    return TimeLimit.starting_now(state.settings.query_timeout)


def _principal(request: Request[Any, Any, Any]) -> Principal:
    return request.scope["state"]["principal"]  # type: ignore[no-any-return]


def _keys(state: State) -> KeyStore:
    return state.key_store  # type: ignore[no-any-return]


def _signer(state: State) -> Signer:
    return state.signer  # type: ignore[no-any-return]


def _webhooks(state: State) -> Webhooks:
    return state.webhooks  # type: ignore[no-any-return]


def _admin(state: State) -> WebhookAdmin:
    return WebhookAdmin(state.webhooks)


def _runners(state: State) -> dict[str, ViewRunner]:
    return state.runners  # type: ignore[no-any-return]


def _sources(state: State) -> SourceRegistry:
    return SourceRegistry(state.log)


def _followers(state: State) -> Followers:
    return followers_of(state)


def _metrics(state: State) -> Metrics:
    return state.metrics  # type: ignore[no-any-return]


def _request_id(request: Request[Any, Any, Any]) -> str:
    return request.scope["state"]["request_id"]  # type: ignore[no-any-return]


DEPENDENCIES: dict[str, Provide] = {
    name: Provide(provider, sync_to_thread=False)
    for name, provider in {
        "log": _log,
        "settings": _settings,
        "reads": _reads,
        "now": _now,
        "budget": _budget,
        "principal": _principal,
        "keys": _keys,
        "signer": _signer,
        "webhooks": _webhooks,
        "admin": _admin,
        "runners": _runners,
        "sources": _sources,
        "request_id": _request_id,
        "followers": _followers,
        "metrics": _metrics,
    }.items()
}
