"""State, as-of, known-at and diff answers stop at PARLEY_QUERY_TIMEOUT with a 503, never a 500 or a hung thread."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from events.errors import QueryTimeoutError
from service.queries.timelimit import TimeLimit
from tests.api.conftest import Api, api_with, deadline

TALKS = "/v1/negotiations/talks"
QUERIES = [
    f"{TALKS}/state?as_of=2025-06-01",
    f"{TALKS}/state/tariffs?as_of=2025-06-01&known_at=2030-01-01T00:00:00Z",
    f"{TALKS}/diff?from=2025-05-01&to=2025-09-01",
    f"{TALKS}/diff?known_from=2025-01-01T00:00:00Z&known_to=2030-01-01T00:00:00Z",
    f"{TALKS}/statements?as_of=2025-06-01",
    f"{TALKS}/timeline?known_at=2030-01-01T00:00:00Z",
    f"{TALKS}/claims?as_of=2025-06-01",
    f"{TALKS}/charts/tariffs.svg",
]


def _append(api: Api, count: int) -> None:
    api.open("talks")
    for first in range(0, count, 100):
        batch = [deadline(f"d{n}", "2025-08-12") for n in range(first, min(first + 100, count))]
        assert api.post(f"{TALKS}/events", {"events": batch}).status_code == 201


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_over_its_time_limit_is_503_with_retry_after(database_url: str, clock: Any, tmp_path: Path, query: str) -> None:
    with api_with(database_url, clock, tmp_path, query_timeout=1e-6) as api:
        _append(api, 300)
        answer = api.get(query)
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        problem = answer.json()
        assert problem["title"] == "Query timed out" and "PARLEY_QUERY_TIMEOUT" in problem["detail"]
        assert api.get(TALKS).status_code == 200  # reading the record itself is no query over it


def test_the_same_queries_answer_within_the_default_limit(database_url: str, clock: Any, tmp_path: Path) -> None:
    with api_with(database_url, clock, tmp_path) as api:
        _append(api, 300)
        assert {query: api.get(query).status_code for query in QUERIES} == dict.fromkeys(QUERIES, 200)


def _ticks(allowed_checks: int) -> TimeLimit:
    """A limit whose clock moves one second per look, so it runs out after `allowed_checks` checks."""
    return TimeLimit(seconds=allowed_checks, expires=allowed_checks + 0.5, clock=itertools.count(1).__next__)


def test_a_stopped_catch_up_keeps_what_it_folded_for_the_next_request(database_url: str, clock: Any, tmp_path: Path) -> None:
    with api_with(database_url, clock, tmp_path) as api:
        _append(api, 600)  # 601 events with the opening: more than two checks' worth (256 each) to fold
        states = api.client.app.state.states
        with pytest.raises(QueryTimeoutError):
            states.state("talks", _ticks(2))
        assert states.state("talks", _ticks(2)).size == 601  # goes on from the 512 events it had folded
