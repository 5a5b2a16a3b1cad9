"""Answers kept as bytes by what determines them: equal to a fresh fold, revalidated by ETag, bounded in memory."""

from __future__ import annotations

import datetime as dt
import resource
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from litestar.testing import TestClient

from service.app import create_app
from service.queries.answers import ENTRY_OVERHEAD, Answers, Ask, _Template
from tests.api.conftest import Api, api_with, deadline, measure
from tests.api.test_state_api import append, open_talks, stamp

FENTANYL = "us-ieepa-fentanyl-cn"
ROUTES = [
    "state", "state/tariffs", "state/deadlines", "statements", "timeline", "claims", "diff-world", "diff-belief",
    "events", "events-filtered",
]


# These tests name the cache's size rather than rely on the default.
CACHE_BYTES = 64 * 1024 * 1024


@pytest.fixture
def api(database_url: str, clock: Any, tmp_path: Any) -> Iterator[Api]:
    """An in-process client with the answer cache on."""
    with api_with(database_url, clock, tmp_path, answer_cache_bytes=CACHE_BYTES) as on:
        yield on


@pytest.fixture
def apps(database_url: str, clock: Any, tmp_path: Any) -> Iterator[tuple[Api, Api]]:
    """One app with the answer cache and one without, on the same store and clock."""
    with api_with(database_url, clock, tmp_path, run_projections=False, answer_cache_bytes=CACHE_BYTES) as cached:
        settings = cached.client.app.state.settings
        off = msgspec.structs.replace(settings, answer_cache_bytes=0, bootstrap_admin=False)
        with TestClient(create_app(off, clock=clock)) as client:
            yield cached, Api(client, cached.keys)  # the keys live in the shared store


def _query(route: str, negotiation: str, as_of: str | None, known_at: str | None, earlier: str | None) -> tuple[str, dict[str, str]]:
    base = f"/v1/negotiations/{negotiation}"
    params = {k: v for k, v in {"as_of": as_of, "known_at": known_at}.items() if v is not None}
    if route == "events":  # the stream as it stands: as_of and known_at are not its parameters
        return f"{base}/events", {}
    if route == "events-filtered":
        return f"{base}/events", {"type": "measure_changed,event_corrected", "limit": "3", "occurred_from": "2025-02-01"}
    if route == "timeline":
        return f"{base}/timeline", {k: v for k, v in params.items() if k == "known_at"}
    if route == "diff-world":
        return f"{base}/diff", {"from": "2025-02-01", "to": as_of or "2025-06-01", **{k: v for k, v in params.items() if k == "known_at"}}
    if route == "diff-belief":
        return f"{base}/diff", {"known_from": earlier or "2026-01-01T00:00:00Z", "known_to": known_at or stamp(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)),
                                **({"as_of": as_of} if as_of else {})}
    return f"{base}/{route}", params


def test_a_cached_answer_is_byte_for_byte_a_fresh_fold(apps: tuple[Api, Api], clock: Any) -> None:
    cached, plain = apps
    open_talks(cached)
    moments = [clock.now]
    recorded: list[str] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        for _ in range(data.draw(st.integers(1, 6))):
            # every draw is made whatever the step, so examples replay (no draw depends on the store)
            step = data.draw(st.sampled_from(["ask", "ask", "ask", "append", "append_elsewhere", "correct"]))
            wait = data.draw(st.integers(1, 3600))
            rate = data.draw(st.sampled_from([10, 20, 25, 34]))
            day = data.draw(st.dates(dt.date(2025, 2, 1), dt.date(2025, 8, 1))).isoformat()
            which = data.draw(st.integers(0, 10**6))
            if step in ("append", "append_elsewhere"):
                clock.advance(seconds=wait)
                # the other app is "another process": the cached one hears of it through its tail, so ask with min_position
                writer = cached if step == "append" else plain
                event = append(writer, measure(FENTANYL, rate, occurred_on=day, effective_from=day))[0]
                if writer is cached:
                    # a write path corrects what it has seen (another process's fresh event is left alone here)
                    recorded.append(event["event_id"])
                moments.append(clock.now)
                position = event["position"]
            elif step == "correct" and recorded:
                clock.advance(seconds=wait)
                target = recorded[which % len(recorded)]
                event = append(cached, {"type": "event_corrected", "occurred_on": "2025-08-02", "target": target,
                                        "replacement": measure(FENTANYL, rate + 1, occurred_on=day, effective_from=day)})[0]
                moments.append(clock.now)
                position = event["position"]
            else:
                position = None
            route = data.draw(st.sampled_from(ROUTES))
            as_of = data.draw(st.none() | st.dates(dt.date(2025, 1, 1), dt.date(2026, 3, 1)).map(dt.date.isoformat))
            pick = moments[data.draw(st.integers(0, 10**6)) % len(moments)]
            shift = dt.timedelta(microseconds=data.draw(st.sampled_from([-1, 0, 1, 500_000])))
            known_at = stamp(pick + shift) if data.draw(st.booleans()) else None
            earlier = stamp(moments[data.draw(st.integers(0, 10**6)) % len(moments)])
            path, params = _query(route, "us-china-trade-2025", as_of, known_at, earlier)
            if position is not None:
                params["min_position"] = str(position)
            for _ in range(2):  # the second read is a hit
                fresh = plain.get(path, params=params)
                kept = cached.get(path, params=params)
                assert kept.status_code == fresh.status_code == 200, (path, params, kept.text)
                assert kept.content == fresh.content, (path, params)
                assert kept.headers["etag"].startswith('W/"')
                params.pop("min_position", None)

    check()
    assert cached.client.app.state.answers.lru.hits > 0


def test_if_none_match_gets_304_without_a_body_until_the_negotiation_moves(api: Api, clock: Any) -> None:
    open_talks(api)
    append(api, measure(FENTANYL, 10))
    path, params = "/v1/negotiations/us-china-trade-2025/state/tariffs", {"as_of": "2025-03-01"}

    first = api.get(path, params=params)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"

    again = api.get(path, params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert api.get(path, params=params, headers={"If-None-Match": '"other", ' + etag}).status_code == 304
    assert api.get(path, params=params, headers={"If-None-Match": "*"}).status_code == 304

    clock.advance(seconds=5)
    append(api, measure(FENTANYL, 20, occurred_on="2025-02-20", effective_from="2025-02-21"))
    moved = api.get(path, params=params, headers={"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert moved.json()["tariffs"] != first.json()["tariffs"]


def test_a_settled_past_is_immutable_and_shares_one_entry_between_two_events(api: Api, clock: Any) -> None:
    open_talks(api)
    append(api, measure(FENTANYL, 10))
    between = [clock.now + dt.timedelta(seconds=s) for s in (1, 2)]
    clock.advance(hours=1)
    append(api, measure(FENTANYL, 20, occurred_on="2025-02-20", effective_from="2025-02-21"))
    clock.advance(hours=1)
    path = "/v1/negotiations/us-china-trade-2025/state"
    answers = [api.get(path, params={"as_of": "2025-03-01", "known_at": stamp(at)}) for at in between]
    assert answers[0].headers["etag"] == answers[1].headers["etag"]
    assert answers[0].headers["cache-control"] == "private, max-age=31536000, immutable"
    assert [a.json()["known_at"] for a in answers] == [stamp(at) for at in between]  # the echo is each request's own
    current = api.get(path, params={"known_at": stamp(between[0])})
    assert current.headers["cache-control"] == "private, no-cache"  # as_of defaulted to today


def test_an_append_to_another_negotiation_keeps_the_etag(api: Api, clock: Any) -> None:
    open_talks(api)
    open_talks(api, "brexit")
    append(api, deadline())
    path = "/v1/negotiations/us-china-trade-2025/state"
    before = api.get(path, params={"as_of": "2025-06-01"}).headers["etag"]
    append(api, deadline(), negotiation="brexit")
    assert api.get(path, params={"as_of": "2025-06-01"}).headers["etag"] == before


def test_the_cache_keeps_to_its_bound_over_100000_distinct_questions() -> None:
    bound = 4 * 1024 * 1024
    answers = Answers(bound, None, lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    body = b'{"as_of":"2025-01-01","known_at":"2026-01-01T00:00:00Z","position":1,' + b'"x":' + b"1" * 1500 + b"}"
    echo = [b'"known_at":"2026-01-01T00:00:00Z"']
    peak = 0
    start = dt.date(1900, 1, 1)
    for n in range(100_000):
        ask = Ask("state", "talks", (start + dt.timedelta(days=n % 50_000), None, ()), (dt.datetime(2026, 1, 1, tzinfo=dt.UTC),))
        answers.lru.put((ask.route, ask.params, n), _Template(body, echo))
        peak = max(peak, answers.lru.bytes)
        assert answers.lru.bytes <= bound
    assert len(answers.lru) == bound // (len(body) - len(echo[0]) + ENTRY_OVERHEAD)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"answer cache: peak accounted {peak} of {bound} bytes, {len(answers.lru)} entries; peak RSS {rss} KiB")


def test_an_event_list_is_revalidated_until_the_stream_moves_and_shows_a_correction(api: Api, clock: Any) -> None:
    open_talks(api)
    event = append(api, measure(FENTANYL, 10))[0]
    path = "/v1/negotiations/us-china-trade-2025/events"
    first = api.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    assert api.get(path, headers={"If-None-Match": etag}).status_code == 304
    clock.advance(seconds=5)
    append(api, {"type": "event_corrected", "occurred_on": "2025-02-02", "target": event["event_id"],
                 "replacement": measure(FENTANYL, 20)})
    moved = api.get(path, headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    listed = {item["event_id"]: item for item in moved.json()["items"]}
    assert listed[event["event_id"]] != {item["event_id"]: item for item in first.json()["items"]}[event["event_id"]]


def test_a_negotiation_read_while_this_process_writes_it_needs_no_catch_up_from_the_store(api: Api, clock: Any) -> None:
    """The process's own appends are folded into its live state as they commit: the next read finds it current."""
    open_talks(api)
    path = "/v1/negotiations/us-china-trade-2025/state"
    states = api.client.app.state.states
    assert api.get(path).status_code == 200  # the live state is kept from here on
    for rate in (10, 20, 30):
        clock.advance(seconds=1)
        version = append(api, measure(FENTANYL, rate))[-1]["version"]
        kept = states.current("us-china-trade-2025")
        assert kept is not None and kept.version == version  # no read since the append
        answer = api.get(path, params={"as_of": "2025-03-01"}).json()
        assert answer["tariffs"]["directions"][0]["total_additional_pct"] == rate
