"""Rate limits per key, counted in the store (SQLite file beside the database, PostgreSQL UNLOGGED table)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from litestar.testing import TestClient

from tests.support.process import free_port
from service.http.ratelimit import (
    CountersUnavailableError,
    PostgresCounters,
    Quota,
    counters_path,
)
from service.app import create_app
from tests.api.conftest import Api, api_with

LIMIT, WINDOW = 3, 60


@pytest.fixture
def limited(database_url: str, clock: Any, tmp_path: Path) -> Iterator[Api]:
    with api_with(database_url, clock, tmp_path, rate_limit=LIMIT, rate_limit_window=WINDOW) as api:
        yield api


def _limits(response: Any) -> tuple[str | None, ...]:
    return tuple(response.headers.get(f"ratelimit-{name}") for name in ("limit", "remaining", "reset", "policy"))


def test_the_request_past_the_limit_is_429_with_retry_after_and_ratelimit_headers(limited: Api) -> None:
    answers = [limited.get("/v1/negotiations") for _ in range(LIMIT)]
    assert [a.status_code for a in answers] == [200] * LIMIT
    assert [_limits(a) for a in answers] == [("3", "2", "20", "3;w=60"), ("3", "1", "40", "3;w=60"), ("3", "0", "60", "3;w=60")]

    refused = limited.get("/v1/negotiations")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert _limits(refused) == ("3", "0", "60", "3;w=60")
    assert refused.headers["x-request-id"] == refused.json()["request_id"]
    problem = refused.json()
    assert problem["status"] == 429 and "'reader-key'" in problem["detail"] and "at most 3 requests per 60 s" in problem["detail"]
    assert problem["errors"] == [{"field": "Authorization", "message": "at most 3 requests per 60 s"}]


def test_every_response_of_a_limited_route_carries_the_headers_errors_too(limited: Api) -> None:
    missing = limited.get("/v1/negotiations/nowhere")
    assert missing.status_code == 404 and _limits(missing)[:2] == ("3", "2")


def test_the_quota_comes_back_as_the_clock_moves(limited: Api, clock: Any) -> None:
    for _ in range(LIMIT):
        assert limited.get("/v1/negotiations").status_code == 200
    refused = limited.get("/v1/negotiations")
    assert refused.status_code == 429

    clock.advance(seconds=int(refused.headers["retry-after"]))
    assert limited.get("/v1/negotiations").status_code == 200  # one request's worth has come back, no more
    assert limited.get("/v1/negotiations").status_code == 429

    clock.advance(seconds=WINDOW)
    again = [limited.get("/v1/negotiations") for _ in range(LIMIT + 1)]
    assert [a.status_code for a in again] == [200] * LIMIT + [429]


def test_keys_are_counted_apart_and_anonymous_reads_by_client_address(database_url: str, clock: Any, tmp_path: Path) -> None:
    with api_with(database_url, clock, tmp_path, rate_limit=LIMIT, public_read=True) as api:
        for _ in range(LIMIT):
            assert api.get("/v1/negotiations", role="reader").status_code == 200
        assert api.get("/v1/negotiations", role="reader").status_code == 429
        assert api.get("/v1/negotiations", role="reporter").status_code == 200

        anonymous = [api.client.get("/v1/negotiations") for _ in range(LIMIT + 1)]
        assert [a.status_code for a in anonymous] == [200] * LIMIT + [429]
        problem = anonymous[-1].json()
        assert "client address testclient" in problem["detail"] and problem["errors"][0]["field"] == "client address"
        # an unknown key is counted against the address it comes from
        assert api.client.get("/v1/negotiations", headers={"Authorization": "Bearer pk_guess"}).status_code == 429


def test_health_readiness_schema_and_the_web_page_are_not_limited(limited: Api) -> None:
    for _ in range(LIMIT + 1):
        limited.client.get("/v1/negotiations")
    assert limited.client.get("/v1/negotiations").status_code == 429
    static = next(p.name for p in (Path(__file__).parents[2] / "service" / "web" / "static").iterdir() if p.is_file())
    for path in ("/health", "/ready", "/schema/openapi.json", "/", f"/static/web/{static}"):
        answer = limited.client.get(path)
        assert answer.status_code == 200, path
        assert "ratelimit-limit" not in answer.headers, path


def test_a_limit_of_zero_turns_limiting_off(database_url: str, clock: Any, tmp_path: Path) -> None:
    with api_with(database_url, clock, tmp_path, rate_limit=0) as api:
        answers = [api.get("/v1/negotiations") for _ in range(10)]
        assert {a.status_code for a in answers} == {200}
        assert all("ratelimit-limit" not in a.headers for a in answers)


def test_unreachable_sqlite_counters_let_requests_through(clock: Any, tmp_path: Path, capsys: Any) -> None:
    database = tmp_path / "parley.db"
    os.mkdir(counters_path(str(database)))  # a directory where the counters' file should be: it cannot be opened
    with api_with(str(database), clock, tmp_path, rate_limit=1) as api:
        answers = [api.get("/v1/negotiations") for _ in range(3)]
    assert {a.status_code for a in answers} == {200}
    assert all("ratelimit-limit" not in a.headers for a in answers)
    logged = capsys.readouterr()
    assert "rate_limit_unavailable" in logged.out + logged.err


def test_unreachable_postgres_counters_are_reported_not_raised() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"

    async def hit() -> None:
        counters = PostgresCounters(url, Quota(LIMIT, WINDOW))
        await counters.open()
        try:
            with pytest.raises(CountersUnavailableError):
                await counters.hit("key_x", 0.0)
        finally:
            await counters.close()

    anyio.run(hit)


def test_every_limited_operation_declares_429(limited: Api) -> None:
    schema = limited.client.get("/schema/openapi.json").json()
    undeclared = [
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if "429" not in operation.get("responses", {})
    ]
    assert undeclared == []


@pytest.fixture
def two_processes(database_url: str, clock: Any, tmp_path: Path) -> Iterator[tuple[Api, Api]]:
    """Two apps on one store and clock with a quota large enough to be claimed in batches (400 / 60 s: 4 at a time)."""
    with api_with(database_url, clock, tmp_path, rate_limit=400, rate_limit_window=WINDOW) as first:
        settings = msgspec.structs.replace(first.client.app.state.settings, bootstrap_admin=False)
        with TestClient(create_app(settings, clock=clock)) as client:
            yield first, Api(client, first.keys)


def test_a_batched_quota_is_spent_exactly_across_two_processes(two_processes: tuple[Api, Api]) -> None:
    first, second = two_processes
    allowed, remaining = 0, {0: [], 1: []}
    refused = set()
    for turn in range(1000):
        side = turn % 2
        if side in refused:
            continue
        answer = (first, second)[side].get("/v1/negotiations")
        if answer.status_code == 429:
            refused.add(side)
            assert answer.headers["ratelimit-remaining"] == "0"
            if refused == {0, 1}:
                break
            continue
        assert answer.status_code == 200
        allowed += 1
        remaining[side].append(int(answer.headers["ratelimit-remaining"]))
    assert refused == {0, 1}
    # claims of 4, then single requests once 4 no longer fit: the last of the quota is claimed exactly
    assert allowed == 400
    for seen in remaining.values():
        assert seen == sorted(seen, reverse=True)  # within a process; the other's claims come between
    assert min(seen[-1] for seen in remaining.values()) == 0


def test_a_process_claims_a_batch_and_the_other_sees_it_counted(two_processes: tuple[Api, Api]) -> None:
    first, second = two_processes
    assert first.get("/v1/negotiations").headers["ratelimit-remaining"] == "399"
    # the first claimed 4 at once (spent one): the second's first request counts after all four
    assert second.get("/v1/negotiations").headers["ratelimit-remaining"] == "395"
    assert first.get("/v1/negotiations").headers["ratelimit-remaining"] == "398"  # from its claim, no store write


def test_unspent_claims_expire_and_are_not_given_back(two_processes: tuple[Api, Api], clock: Any) -> None:
    first, second = two_processes
    assert first.get("/v1/negotiations").status_code == 200  # claims 4, spends 1
    clock.advance(seconds=2)  # the 3 unspent are dropped; the quota has come back meanwhile (0.15 s a request)
    assert first.get("/v1/negotiations").headers["ratelimit-remaining"] == "399"  # a fresh claim on a full quota
    assert second.get("/v1/negotiations").headers["ratelimit-remaining"] == "395"
