"""GET /metrics and GET /ready: counts by route template, appends, view lag, the webhook queue, readiness rules."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.http.metrics import Metrics
from service.settings import Settings, SettingsError
from tests.api.conftest import deadline, measure
from tests.api.test_webhooks import Receiver, receiver  # noqa: F401 - the same receiving server as the webhook tests


def scrape(client: TestClient[Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, keyed by sample name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str, method: str, status: int) -> float:
    return value(samples, "parley_http_requests_total", route=route, method=method, status=str(status))


@contextmanager
def served_app(database_url: str, tmp_path: Any, clock: Any, **settings: Any) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    """An app with these settings and an admin key, with a negotiation `talks` opened."""
    app = create_app(Settings(database_url=database_url, signing_key_file=str(tmp_path / "k"), **settings), clock=clock)
    with TestClient(app) as client:
        key = client.app.state.key_store.create(name="admin", role="admin", created_by="test").key
        admin = {"Authorization": f"Bearer {key}"}
        opened = client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}, headers=admin)
        assert opened.status_code == 201, opened.text
        yield client, admin


def append(client: TestClient[Any], admin: dict[str, str], *events: dict[str, Any]) -> None:
    response = client.post("/v1/negotiations/talks/events", json={"events": list(events)}, headers=admin)
    assert response.status_code == 201, response.text


def test_requests_are_counted_by_route_template_method_and_status(api):
    api.open("talks")
    for _ in range(3):
        assert api.get("/v1/negotiations/talks").status_code == 200
    assert api.get("/v1/negotiations/elsewhere").status_code == 404
    assert api.client.get("/v1/no-such-route").status_code == 404
    assert api.client.delete("/health").status_code == 405

    samples = scrape(api.client)

    assert requests(samples, "/v1/negotiations", "POST", 201) == 1
    assert requests(samples, "/v1/negotiations/{negotiation_id}", "GET", 200) == 3
    assert requests(samples, "/v1/negotiations/{negotiation_id}", "GET", 404) == 1
    assert requests(samples, "(unmatched)", "GET", 404) == 1
    assert requests(samples, "(unmatched)", "DELETE", 405) == 1
    assert value(samples, "parley_http_request_duration_seconds_count", route="/v1/negotiations/{negotiation_id}",
                 method="GET", status="200") == 3
    assert value(samples, "parley_http_request_duration_seconds_bucket", route="/v1/negotiations/{negotiation_id}",
                 method="GET", status="200", le="+Inf") == 3
    routes = {dict(labels).get("route") for name, labels in samples if name == "parley_http_requests_total"}
    assert not any(route and ("talks" in route or "elsewhere" in route or "no-such" in route) for route in routes)


def test_the_append_counter_and_the_head_move_with_appends(api):
    api.open("talks")
    before = scrape(api.client)
    response = api.post("/v1/negotiations/talks/events", {"events": [deadline("a"), deadline("b"), measure()]})
    assert response.status_code == 201, response.text

    after = scrape(api.client)

    assert value(after, "parley_events_appended_total") - value(before, "parley_events_appended_total") == 3
    assert value(after, "parley_log_head_position") - value(before, "parley_log_head_position") == 3
    assert value(after, "parley_log_head_position") == response.json()["events"][-1]["position"]
    assert value(after, "parley_store_up") == 1


def test_lag_counts_the_events_a_view_has_not_processed_and_returns_to_zero_after_catch_up(database_url, tmp_path, clock):
    with served_app(database_url, tmp_path, clock, run_projections=False) as (client, admin):
        append(client, admin, deadline("a"), deadline("b"))

        behind = scrape(client)
        head = value(behind, "parley_log_head_position")
        assert head > 0
        for view in ("deadlines", "measures"):
            assert value(behind, "parley_projection_lag_events", view=view) == head

        client.app.state.runners["deadlines"].catch_up()
        caught_up = scrape(client)
        assert value(caught_up, "parley_projection_lag_events", view="deadlines") == 0
        assert value(caught_up, "parley_projection_lag_events", view="measures") == head


def test_ready_is_503_while_a_view_lags_beyond_the_bound_and_200_after_catch_up(database_url, tmp_path, clock):
    with served_app(database_url, tmp_path, clock, run_projections=False, ready_max_lag=2) as (client, admin):
        append(client, admin, deadline("a"), deadline("b"))

        response = client.get("/ready")

        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "5"
        problem = response.json()
        assert problem["title"] == "Not ready"
        assert {e["field"] for e in problem["errors"]} == {"views.deadlines", "views.measures"}
        assert "at most 2" in problem["errors"][0]["message"]

        for runner in client.app.state.runners.values():
            runner.catch_up()
        response = client.get("/ready")
        assert response.status_code == 200
        assert response.json()["lag"] == {"deadlines": 0, "measures": 0}


def test_ready_ignores_lag_when_no_bound_is_set(database_url, tmp_path, clock):
    with served_app(database_url, tmp_path, clock, run_projections=False) as (client, admin):
        append(client, admin, deadline("a"), deadline("b"))
        response = client.get("/ready")
        assert response.status_code == 200
        assert response.json()["lag"]["deadlines"] == response.json()["position"]


def test_a_running_projection_brings_the_lag_back_to_zero(api):
    api.open("talks")
    api.post("/v1/negotiations/talks/events", {"events": [deadline("a"), measure()]})
    deadline_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    while dt.datetime.now(dt.UTC) < deadline_at:
        if api.client.get("/ready").json()["lag"] == {"deadlines": 0, "measures": 0}:
            break
        time.sleep(0.05)
    samples = scrape(api.client)
    assert value(samples, "parley_projection_lag_events", view="deadlines") == 0
    assert value(samples, "parley_projection_lag_events", view="measures") == 0


def test_the_webhook_queue_and_failed_deliveries_come_from_the_outbox(database_url, tmp_path, clock, receiver):  # noqa: F811 - the imported fixture
    clock.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    settings = {"run_projections": False, "run_webhooks": False, "webhook_allow_hosts": "127.0.0.1"}
    with served_app(database_url, tmp_path, clock, **settings) as (client, admin):
        webhooks = client.app.state.webhooks
        webhooks.relay.catch_up()
        assert client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["event.*"]}, headers=admin).status_code == 201
        append(client, admin, deadline("a"), deadline("b"))
        assert value(scrape(client), "parley_webhook_relay_lag_events") == 2

        webhooks.relay.catch_up()
        queued = scrape(client)
        assert value(queued, "parley_webhook_relay_lag_events") == 0
        assert value(queued, "parley_webhook_queue_depth", state="pending") == 2
        assert value(queued, "parley_webhook_queue_depth", state="due") == 2

        receiver.answers = [(503, {}), (200, {})]
        while webhooks.sender.deliver_due():
            pass
        retrying = scrape(client)
        assert value(retrying, "parley_webhook_queue_depth", state="pending") == 1  # the 503, to be retried
        assert value(retrying, "parley_webhook_queue_depth", state="due") == 0
        assert value(retrying, "parley_webhook_delivery_attempts_total") == 2
        assert value(retrying, "parley_webhook_delivery_failures_total") == 1

        clock.advance(minutes=1)
        while webhooks.sender.deliver_due():
            pass
        delivered = scrape(client)
        assert value(delivered, "parley_webhook_queue_depth", state="pending") == 0
        assert value(delivered, "parley_webhook_delivery_attempts_total") == 3
        assert value(delivered, "parley_webhook_delivery_failures_total") == 1


def test_metrics_is_open_and_declared_as_text(api):
    schema = api.client.get("/schema/openapi.json").json()
    operation = schema["paths"]["/metrics"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
    assert operation.get("security") is None
    assert "503" in schema["paths"]["/ready"]["get"]["responses"]


def test_a_metrics_dir_without_multiprocess_mode_is_refused(tmp_path):
    # This test process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR: counts would stay in memory.
    with pytest.raises(SettingsError, match="PARLEY_METRICS_DIR"):
        Metrics(Settings(metrics_dir=str(tmp_path / "metrics")))


def test_the_answer_cache_reports_its_bytes_entries_hits_and_misses(database_url, tmp_path, clock):
    with served_app(database_url, tmp_path, clock, answer_cache_bytes=1_000_000) as (client, admin):
        append(client, admin, deadline("a"))
        pid = {"pid": str(os.getpid())}  # the in-process app: this process
        before = scrape(client)
        assert value(before, "parley_answer_cache_bound_bytes", **pid) == 1_000_000
        assert value(before, "parley_answer_cache_entries", **pid) == 0
        for as_of in ("2025-06-01", "2025-06-01", "2025-06-01", "2025-07-01"):
            assert client.get(f"/v1/negotiations/talks/state?as_of={as_of}", headers=admin).status_code == 200
        after = scrape(client)
        assert value(after, "parley_answer_cache_misses_total", **pid) == 2  # each answer computed once
        assert value(after, "parley_answer_cache_hits_total", **pid) == 2
        assert value(after, "parley_answer_cache_entries", **pid) == 2
        assert 0 < value(after, "parley_answer_cache_bytes", **pid) <= 1_000_000
