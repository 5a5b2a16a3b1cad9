"""Webhook delivery: append-to-delivery latency and deliveries/s to 5 local receivers, SQLite and PostgreSQL.

In one run per store: (1) events appended one at a time, each timed until all 5 receivers have
it (p50, p99); (2) a burst of events, deliveries/s until every receiver has every message, as a
ratio of plain signed POSTs/s to the same receivers from the same process (the baseline).
Run: `.venv/bin/python -m bench.webhooks`.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

from events.application import utcnow
from events.payloads import DeadlineSet, NegotiationOpened
from service.stores import open_log
from tests.support.process import drop_postgres_tables
from service.settings import Settings
from service.signing import Signer
from service.webhooks import open_webhooks
from service.webhooks.outbound import check_destination, post
from tests.api.test_webhooks import Receiver

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ALLOW = frozenset({"127.0.0.1"})


def event(i: int) -> DeadlineSet:
    today = dt.date.today()
    return DeadlineSet(occurred_on=today, deadline_id=f"d{i}", title="D", due_on=today)


def run(name: str, url: str, singles: int, burst: int) -> tuple[str, float, float, float, float]:
    receivers = [Receiver() for _ in range(5)]
    for receiver in receivers:
        receiver.start()
    log = open_log(Settings(database_url=url))
    hooks = open_webhooks(log, secret_key=Signer.load(base64.b64encode(os.urandom(32)).decode(), "").derive_key("w"),
                          clock=utcnow, allow_hosts=ALLOW)
    try:
        log.record("bench", [NegotiationOpened(occurred_on=dt.date.today(), title="B", parties=("US",))], principal="b", request_id="r")
        hooks.relay.catch_up()
        for receiver in receivers:
            hooks.subscriptions.create(url=receiver.url, event_types=["event.deadline_set"], negotiations=[], description=None,
                                       created_by="bench", now=utcnow())
        hooks.start()

        def delivered(message_id: str) -> bool:
            return all(any(h["webhook-id"] == message_id for h, _ in r.received[-50:]) for r in receivers)

        latencies = []
        for i in range(singles):
            started = time.perf_counter()
            appended = log.record("bench", [event(i)], principal="b", request_id="r")
            message_id = f"event.{appended[0].record.event_id}"
            while not delivered(message_id):
                time.sleep(0.0005)
            latencies.append((time.perf_counter() - started) * 1000)
        before = sum(len(r.received) for r in receivers)
        started = time.perf_counter()
        for start in range(0, burst, 100):
            log.record("bench", [event(i) for i in range(start, start + 100)], principal="b", request_id="r")
        while sum(len(r.received) for r in receivers) - before < burst * 5:
            time.sleep(0.01)
        rate = burst * 5 / (time.perf_counter() - started)
        hooks.stop()
        body = receivers[0].received[-1][1]
        headers = {k: v for k, v in receivers[0].received[-1][0].items() if k.startswith("webhook-")}
        destinations = [check_destination(r.url, allow_hosts=ALLOW) for r in receivers]
        started = time.perf_counter()
        for i in range(burst * 5):
            post(destinations[i % 5], body, headers, allow_hosts=ALLOW)
        baseline = burst * 5 / (time.perf_counter() - started)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return name, statistics.median(latencies), p99, rate, baseline
    finally:
        log.close()
        for receiver in receivers:
            receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(run("SQLite", str(Path(tmp) / "hooks.db"), args.singles, args.burst))
    if not args.skip_postgres:
        drop_postgres_tables(POSTGRES_URL)
        rows.append(run("PostgreSQL", POSTGRES_URL, args.singles, args.burst))
    print(f"{'store':<12} {'p50 ms':>8} {'p99 ms':>8} {'deliveries/s':>13} {'plain POST/s':>13} {'ratio':>6}")
    for name, p50, p99, rate, baseline in rows:
        print(f"{name:<12} {p50:>8.1f} {p99:>8.1f} {rate:>13.0f} {baseline:>13.0f} {rate / baseline:>6.2f}")


if __name__ == "__main__":
    main()
