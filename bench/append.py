"""Append throughput: HTTP against a served process vs the same appends straight through the application.

Prints, for SQLite and PostgreSQL, events/s for single-event requests and 100-event batches
with several concurrent clients, and each HTTP rate as a ratio of the direct rate measured in
the same run on the same store: once with the server as `make run` serves it (the persisted views
and the webhook relay following the log inside the process, the default rate limit) and once
with those off (the append path alone). Each client appends to a negotiation of its own, every
event a new deadline, so a client's negotiation ends with hundreds (single events) or thousands
(batches) of deadlines. Run: `make bench` (or `.venv/bin/python -m bench.append`).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import msgspec

from bench.rawhttp import RawClient
from events.application import ParleyLog, store_env
from events.payloads import DeadlineSet, NegotiationOpened
from events.records import Recorded, stream_id
from tests.support.process import create_key, drop_postgres_tables, start_server, stop_server

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def payload(i: int) -> dict[str, object]:
    return {"type": "deadline_set", "occurred_on": "2025-05-12", "deadline_id": f"d{i}", "title": "Truce expiry", "due_on": "2025-08-12"}


def event(i: int) -> DeadlineSet:
    return DeadlineSet(occurred_on=dt.date(2025, 5, 12), deadline_id=f"d{i}", title="Truce expiry", due_on=dt.date(2025, 8, 12))


def run_clients(clients: int, work: int, job) -> float:  # type: ignore[no-untyped-def]
    """Split `work` units over `clients` threads; return units per second."""
    per = work // clients
    started = time.perf_counter()
    with futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda c: job(c, per), range(clients)))
    return per * clients / (time.perf_counter() - started)


def direct_library(url: str, clients: int, requests: int, batch: int) -> float:
    """The eventsourcing application's own save(), one stream per client, no HTTP, no rules."""
    app = ParleyLog(store_env(url))
    now = dt.datetime.now(dt.UTC)

    def job(client: int, count: int) -> None:
        nid = f"direct-{uuid.uuid4().hex[:8]}"
        version = 0
        opened = NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title="B", parties=("US",))
        for n in range(count + 1):
            events = [opened] if n == 0 else [event(n * batch + k) for k in range(batch)]
            records = []
            for e in events:
                version += 1
                records.append(Recorded(originator_id=stream_id(nid), originator_version=version, event_id=str(uuid.uuid4()),
                                        negotiation_id=nid, recorded_at=now, recorded_by="bench", request_id="bench", event=e))
            app.save(*records)

    try:
        return run_clients(clients, requests, job) * batch
    finally:
        app.close()


def over_http(base_url: str, key: str, clients: int, requests: int, batch: int) -> float:
    def job(client: int, count: int) -> None:
        nid = f"http-{uuid.uuid4().hex[:8]}"
        with RawClient(base_url, {"Authorization": f"Bearer {key}"}) as http:
            status, body = http.request("POST", "/v1/negotiations", msgspec.json.encode({"id": nid, "title": "B", "parties": ["US"]}))
            assert status == 201, body
            for n in range(count):
                sent = payload(n) if batch == 1 else {"events": [payload(n * batch + k) for k in range(batch)]}
                status, body = http.request("POST", f"/v1/negotiations/{nid}/events", msgspec.json.encode(sent))
                assert status == 201, body

    return run_clients(clients, requests, job) * batch


# The append path alone: the embedded view runners and webhook relay would share the 2 cores, and one
# key sends every request, far past any rate limit.
APPEND_ONLY = {"PARLEY_LOG_LEVEL": "warning", "PARLEY_RUN_PROJECTIONS": "0", "PARLEY_RUN_WEBHOOKS": "0", "PARLEY_RATE_LIMIT": "0"}
# As `make run` serves: the view runners and the webhook relay inside the process, the default rate limit.
MAKE_RUN = {"PARLEY_LOG_LEVEL": "warning"}


def caught_up(base_url: str, timeout: float = 600) -> None:
    """Wait until the server's followers (views, relay), if it runs them, have every event so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lags = [float(line.rsplit(" ", 1)[1]) for line in httpx.get(f"{base_url}/metrics", timeout=30).text.splitlines()
                if line.startswith(("parley_projection_lag_events", "parley_webhook_relay_lag_events"))]
        if all(lag == 0 for lag in lags):
            return
        time.sleep(0.5)
    raise SystemExit(f"the server's followers did not catch up within {timeout:.0f} s")


def measure(name: str, url: str, workdir: Path, clients: int, singles: int, batches: int) -> list[tuple[str, float, float]]:
    key = create_key(url, f"bench-{uuid.uuid4().hex[:6]}", "reporter")
    rows = []
    cases = [
        ("single-event requests", 1, singles, MAKE_RUN, " (as make run serves)"),
        ("single-event requests", 1, singles, APPEND_ONLY, " (views, webhooks off)"),
        ("100-event batches", 100, batches, MAKE_RUN, " (as make run serves)"),
        ("100-event batches", 100, batches, APPEND_ONLY, " (views, webhooks off)"),
    ]
    for label, batch, count, env, note in cases:
        # the direct appends first, with no server: its view runners and relay would otherwise still be
        # following them while the HTTP appends are measured
        direct = direct_library(url, clients, count, batch)
        process, base_url = start_server(url, workdir / f"{name}.log", env=env)
        try:
            if env is MAKE_RUN:
                caught_up(base_url)
            http = over_http(base_url, key, clients, count, batch)
        finally:
            stop_server(process)
        rows.append((f"{name}: {label}, {clients} clients{note}", http, direct))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--singles", type=int, default=800, help="single-event requests per store")
    parser.add_argument("--batches", type=int, default=40, help="100-event batch requests per store")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows += measure("SQLite", str(workdir / "bench.db"), workdir, args.clients, args.singles, args.batches)
        if not args.skip_postgres:
            drop_postgres_tables(POSTGRES_URL)
            rows += measure("PostgreSQL", POSTGRES_URL, workdir, args.clients, args.singles, args.batches)
    print(f"{'append path':<72} {'HTTP ev/s':>10} {'direct ev/s':>12} {'ratio':>7}")
    for label, http, direct in rows:
        print(f"{label:<72} {http:>10.0f} {direct:>12.0f} {http / direct:>7.2f}")


if __name__ == "__main__":
    main()
