"""Prometheus metrics: requests and appends counted in each process, lag and queues read from the database when scraped.

Counters and histograms live in memory, or, with PARLEY_METRICS_DIR, in files the worker processes
share (prometheus_client's multiprocess mode), so a scrape of any worker adds up all of them. What
the database knows (log head, view lag, webhook queue) is read at scrape time and is the same in
every process.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from litestar.types import Scope
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from events.application import ParleyLog
from events.errors import StoreUnavailableError
from service.http.metrics_dir import MULTIPROC_VARIABLE, shared_dir
from service.queries.answers import Answers
from service.queries.progress import Followers, read_outbox, read_progress
from service.settings import Settings, SettingsError

UNMATCHED = "(unmatched)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABELS = ("route", "method", "status")


class Metrics:
    """One app's own metrics: HTTP requests by route template, method and status, and events appended."""

    def __init__(self, settings: Settings) -> None:
        self.directory = _shared_directory(settings.metrics_dir)
        self.requests = Counter(
            "parley_http_requests", "HTTP requests answered, by route template, method and status.", _LABELS, registry=None
        )
        self.latency = Histogram(
            "parley_http_request_duration_seconds", "Time to answer an HTTP request, by route template, method and status.",
            _LABELS, registry=None,
        )
        self.appended = Counter("parley_events_appended", "Events this server appended to the log.", registry=None)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Count a routed request under its route template (never the raw path: bounded label values)."""
        labels = (scope.get("path_template") or UNMATCHED, _method(scope), status)
        children = self._children.get(labels)
        if children is None:  # the labelled series, looked up once per (route, method, status): a bounded set
            named = (labels[0], labels[1], str(status))
            children = self._children[labels] = (self.requests.labels(*named), self.latency.labels(*named))
        children[0].inc()
        children[1].observe(seconds)

    def count_unrouted(self, scope: Scope, status: int) -> None:
        """An answer the router gives itself (404, 405: an exception no route handled), for which no middleware ran.

        Counted by the exception handler (service/http/problems.py), not by a hook on every message sent.
        """
        self.requests.labels(UNMATCHED, _method(scope), str(status)).inc()

    def count_appends(self, log: ParleyLog) -> None:
        log.append_listeners.append(self.appended.inc)

    def exposition(self, *collectors: Any) -> bytes:
        """The text format: this process's metrics (or every worker's, from the shared directory) and `collectors`."""
        registry = CollectorRegistry()
        if self.directory is not None:
            MultiProcessCollector(registry, path=str(self.directory))
        else:
            for metric in (self.requests, self.latency, self.appended):
                registry.register(metric)
        for collector in collectors:
            registry.register(collector)
        return generate_latest(registry)


def _method(scope: Scope) -> str:
    method = scope.get("method", "")
    return method if method in _METHODS else "other"


def _shared_directory(configured: str) -> Path | None:
    """The shared directory, when prometheus_client really is in multiprocess mode for it; refuse a half set-up."""
    multiprocess = values.ValueClass is not values.MutexValue
    shared = os.environ.get(MULTIPROC_VARIABLE)
    if not configured:
        if multiprocess:
            raise SettingsError(f"{MULTIPROC_VARIABLE} is set: set PARLEY_METRICS_DIR to the same directory")
        return None
    directory = shared_dir(configured)
    if not multiprocess or shared is None or shared_dir(shared) != directory:
        raise SettingsError(
            f"PARLEY_METRICS_DIR={configured} needs {MULTIPROC_VARIABLE}={directory} set before prometheus_client is "
            "imported: start the server with `parley serve`, which sets it up"
        )
    return directory


class StoreMetrics:
    """A collector whose values come from the database at scrape time, so every process reports the same."""

    def __init__(self, log: ParleyLog, followers: Followers, clock: Callable[[], dt.datetime]) -> None:
        self.log = log
        self.followers = followers
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("parley_store_up", "1 when the event store answered this scrape, else 0.")
        try:
            progress = read_progress(self.log, self.followers)
            outbox = read_outbox(self.log, self.clock())
        except StoreUnavailableError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("parley_log_head_position", "Position of the newest event in the log.", value=progress.head)
        lag = GaugeMetricFamily(
            "parley_projection_lag_events", "Events in the log a persisted view has not processed yet.", labels=["view"]
        )
        for view, behind in sorted(progress.view_lag().items()):
            lag.add_metric([view], behind)
        yield lag
        yield GaugeMetricFamily(
            "parley_webhook_relay_lag_events", "Events in the log the webhook relay has not turned into messages yet.",
            value=progress.relay_lag,
        )
        depth = GaugeMetricFamily(
            "parley_webhook_queue_depth",
            "Outbox rows: pending (waiting, including retries not yet due), due (pending and due now), delivering (leased).",
            labels=["state"],
        )
        for state, count in (("pending", outbox.pending), ("due", outbox.due), ("delivering", outbox.delivering)):
            depth.add_metric([state], count)
        yield depth
        yield CounterMetricFamily(
            "parley_webhook_delivery_attempts", "Webhook delivery attempts made by any sender.", value=outbox.attempts
        )
        yield CounterMetricFamily(
            "parley_webhook_delivery_failures",
            "Webhook delivery attempts that failed: no answer, a refused destination, or a status other than 2xx.",
            value=outbox.failed_attempts,
        )


class AnswerCacheMetrics:
    """The answer cache of the process that answers the scrape (each worker keeps its own: labelled by pid)."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers

    def collect(self) -> Iterator[Metric]:
        lru, pid = self.answers.lru, [str(os.getpid())]
        for name, text, value in (
            ("parley_answer_cache_bytes", "Bytes the answer cache of this process holds, as it accounts them.", lru.bytes),
            ("parley_answer_cache_bound_bytes", "The answer cache's bound (PARLEY_ANSWER_CACHE_BYTES); 0 is off.", lru.max_bytes),
            ("parley_answer_cache_entries", "Answers the answer cache of this process holds.", len(lru)),
        ):
            gauge = GaugeMetricFamily(name, text, labels=["pid"])
            gauge.add_metric(pid, value)
            yield gauge
        for name, text, value in (
            ("parley_answer_cache_hits", "Answers this process found in its answer cache.", lru.hits),
            ("parley_answer_cache_misses", "Answers this process looked for in its answer cache and computed.", lru.misses),
        ):
            counter = CounterMetricFamily(name, text, labels=["pid"])
            counter.add_metric(pid, value)
            yield counter
