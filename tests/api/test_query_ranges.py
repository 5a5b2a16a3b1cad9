"""Expensive queries bound their work before doing it: an over-large range is a 400 naming its fields and the limit, and no event makes a default view long."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, api_with, deadline, measure

TALKS = "/v1/negotiations/talks"
CHARTS = [f"{TALKS}/charts/tariffs.svg", f"{TALKS}/charts/tariffs.png"]
OPENED = dt.date(2026, 1, 1)  # the test clock's day: the opening's occurred_on


def _refused(answer: Any, *fields: str) -> list[dict[str, str]]:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    errors = answer.json()["errors"]
    assert [e["field"] for e in errors] == list(fields)
    return errors


def _range(api: Api, **params: str) -> tuple[dt.date, dt.date]:
    answer = api.get(CHARTS[0], params=params)
    assert answer.status_code == 200, answer.text
    svg = ET.fromstring(answer.text)
    return dt.date.fromisoformat(svg.get("data-start", "")), dt.date.fromisoformat(svg.get("data-end", ""))


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize(("start", "end"), [("1800-01-01", "2999-12-31"), ("2015-01-01", "2025-01-09")])
def test_a_chart_range_over_the_limit_is_400_naming_from_and_to_and_the_limit_before_any_work(
    database_url: str, clock: Any, tmp_path: Path, chart: str, start: str, end: str
) -> None:
    # A limit no fold could meet: anything that read and folded the negotiation would answer 503.
    with api_with(database_url, clock, tmp_path, query_timeout=1e-6) as api:
        api.open("talks")
        errors = _refused(api.get(chart, params={"from": start, "to": end}), "from", "to")
        assert all("3,660 days" in e["message"] for e in errors), errors
        assert api.get(chart, params={"from": "2015-01-01", "to": "2025-01-08"}).status_code == 503  # at the limit: worked on


def test_a_chart_range_at_the_limit_is_drawn(api: Api) -> None:
    api.open("talks")
    assert api.post(f"{TALKS}/events", measure()).status_code == 201
    assert _range(api, **{"from": "2015-01-01", "to": "2025-01-08"}) == (dt.date(2015, 1, 1), dt.date(2025, 1, 8))  # 3,660 days
    _refused(api.get(CHARTS[0], params={"from": "2015-01-01", "to": "2025-01-09"}), "from", "to")


def test_a_far_future_deadline_keeps_the_default_chart_short_and_its_retraction_forgets_it(api: Api) -> None:
    api.open("talks")
    assert api.post(f"{TALKS}/events", measure()).status_code == 201
    plain = _range(api)
    assert plain == (dt.date(2025, 2, 1), OPENED + dt.timedelta(days=30))  # the first event, a month past the last date named
    far = api.post(f"{TALKS}/events", deadline(due_on="2999-12-31")).json()["events"][0]
    start, end = _range(api)
    assert start == dt.date(2025, 2, 1) and end == OPENED + dt.timedelta(days=1826)  # five years past the record's last dated event
    retraction = {"type": "event_retracted", "occurred_on": "2025-05-13", "target": far["event_id"], "reason": "a typo"}
    assert api.post(f"{TALKS}/events", retraction).status_code == 201
    assert _range(api) == plain


def test_events_dated_at_both_edges_of_the_world_range_keep_the_default_chart_within_the_limit(api: Api) -> None:
    api.open("talks")
    assert api.post(f"{TALKS}/events", measure()).status_code == 201
    edges = [
        deadline("ancient", due_on="1800-01-02", occurred_on="1800-01-01"),
        {**measure("far-off", effective_from="2999-12-30"), "occurred_on": "2999-12-30"},
    ]
    assert api.post(f"{TALKS}/events", {"events": edges}).status_code == 201
    start, end = _range(api)
    # a fact dated after today does not move the record's end; the range keeps its latest 3,660 days
    assert end == OPENED + dt.timedelta(days=1826) and (end - start).days == 3660


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"from": "1800-01-01"}, (dt.date(1800, 1, 1), dt.date(1810, 1, 9))),
        ({"to": "2999-12-31"}, (dt.date(2989, 12, 23), dt.date(2999, 12, 31))),
    ],
    ids=["from alone", "to alone"],
)
def test_a_bound_left_out_stays_within_the_limit_of_the_one_given(api: Api, given: dict[str, str], expected: tuple[dt.date, dt.date]) -> None:
    api.open("talks")
    assert api.post(f"{TALKS}/events", measure()).status_code == 201
    assert _range(api, **given) == expected  # 3,660 days from the bound given, not the record's default


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        (f"{TALKS}/timeline", {"from": "2025-06-01", "to": "2025-05-01"}, "to"),
        (f"{TALKS}/events", {"occurred_from": "2025-06-01", "occurred_to": "2025-05-01"}, "occurred_to"),
        ("/v1/audit/events", {"recorded_from": "2026-06-01T00:00:00Z", "recorded_to": "2026-05-01T00:00:00Z"}, "recorded_to"),
    ],
    ids=["timeline", "events", "audit"],
)
def test_a_range_that_ends_before_it_starts_is_400_naming_its_end(database_url: str, clock: Any, tmp_path: Path, route: str, params: dict[str, str], field: str) -> None:
    with api_with(database_url, clock, tmp_path, query_timeout=1e-6) as api:
        api.open("talks")
        [error] = _refused(api.get(route, params=params), field)
        start_field = next(iter(params))
        assert error["message"] == f"must be on or after {start_field}"
