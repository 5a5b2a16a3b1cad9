"""The price of tamper evidence: append throughput with the hash chain on vs off, and verify rate.

In one run per store: the same 100-event batches appended through the application with the chain
on and with it off (the ratio on/off is the figure; target >= 0.9), then `verify` over 100,000
events in events/s. Run: `.venv/bin/python -m bench.audit`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from events.application import ParleyLog, store_env
from events.payloads import DeadlineSet, NegotiationOpened
from events.store import ParleyPostgresRecorder, ParleySQLiteRecorder
from tests.support.process import drop_postgres_tables

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class UnchainedSQLiteRecorder(ParleySQLiteRecorder):
    hash_chain = False


class UnchainedPostgresRecorder(ParleyPostgresRecorder):
    hash_chain = False


def reset(url: str) -> None:
    if url.startswith("postgresql"):
        drop_postgres_tables(url)


def append_rate(url: str, chained: bool, batches: int) -> float:
    env = store_env(url)
    if not chained:
        env["APPLICATION_RECORDER_TOPIC"] = "bench.audit:" + ("UnchainedPostgresRecorder" if url.startswith("postgresql") else "UnchainedSQLiteRecorder")
    log = ParleyLog(env)
    try:
        nid = f"audit-{'on' if chained else 'off'}-{time.monotonic_ns()}"
        log.record(nid, [NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title="B", parties=("US",))], principal="bench", request_id="b")
        batch = [DeadlineSet(occurred_on=dt.date(2025, 1, 1), deadline_id=f"d{i}", title="D", due_on=dt.date(2025, 2, 1)) for i in range(100)]
        started = time.perf_counter()
        for _ in range(batches):
            log.record(nid, batch, principal="bench", request_id="b")
        return batches * 100 / (time.perf_counter() - started)
    finally:
        log.close()


def verify_rate(url: str, events: int) -> tuple[float, int]:
    log = ParleyLog(store_env(url))
    try:
        nid = "verify"
        log.record(nid, [NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title="V", parties=("US",))], principal="bench", request_id="b")
        batch = [DeadlineSet(occurred_on=dt.date(2025, 1, 1), deadline_id=f"d{i}", title="D", due_on=dt.date(2025, 2, 1)) for i in range(1000)]
        while log.head() < events:
            log.record(nid, batch, principal="bench", request_id="b")
        started = time.perf_counter()
        report, _ = log.verify()
        assert report.ok
        return report.checked / (time.perf_counter() - started), report.checked
    finally:
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--verify-events", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    stores = [("SQLite", None)] + ([] if args.skip_postgres else [("PostgreSQL", POSTGRES_URL)])
    print(f"{'store':<12} {'chain on ev/s':>14} {'chain off ev/s':>15} {'on/off':>7} {'verify ev/s':>12} {'verified':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in stores:
            url = url or str(Path(tmp) / "audit.db")
            reset(url)
            # interleave to share the machine's noise fairly
            on, off = [], []
            for _ in range(3):
                on.append(append_rate(url, True, args.batches // 3))
                off.append(append_rate(url, False, args.batches // 3))
            rate_on, rate_off = sorted(on)[1], sorted(off)[1]
            reset(url)
            if not url.startswith("postgresql"):
                Path(url).unlink(missing_ok=True)
            verified_rate, verified = verify_rate(url, args.verify_events)
            print(f"{name:<12} {rate_on:>14.0f} {rate_off:>15.0f} {rate_on / rate_off:>7.2f} {verified_rate:>12.0f} {verified:>9}")


if __name__ == "__main__":
    main()
