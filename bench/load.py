"""Load test: a realistic mix against a served process, with a trivial litestar route as the baseline.

64 keep-alive connections for 2 minutes (by default) send 80% state reads (current and as_of a
random date, sometimes known_at), 15% event-list reads and 5% appends to a served `parley serve`
holding the shipped dataset, on SQLite and on PostgreSQL. Prints throughput, p50/p99 latency
per kind, errors (any status other than the expected 200/201, or a dropped connection) and the
server's peak RSS. The same connections hit one trivial litestar route served the same way just
before and just after the mix, and the mix's throughput is printed as a ratio of the two baselines'
mean (a shared host's speed drifts: one baseline after the mix once met a machine 1.5 times faster
than the mix had). Run:

    .venv/bin/python -m bench.load                 # 2 minutes each, both stores
    .venv/bin/python -m bench.load --seconds 10    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from bench.rawhttp import read_response
from tests.support.process import (
    create_key,
    drop_postgres_tables,
    free_port,
    start_server,
    stop_server,
)

POSTGRES_URL = os.environ.get("PARLEY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATASET = "us-china-trade-2025"
LIVE = [f"live-{n}" for n in range(4)]
FIRST_DAY, LAST_DAY = dt.date(2024, 9, 1), dt.date(2025, 9, 30)
# The server as `make run` serves it (views and webhooks inside), minus limits a load test would trip.
SERVED = {"PARLEY_LOG_LEVEL": "warning", "PARLEY_RATE_LIMIT": "0"}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, ok: bool) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        if not ok:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def random_day(rng: random.Random) -> str:
    return (FIRST_DAY + dt.timedelta(days=rng.randrange((LAST_DAY - FIRST_DAY).days))).isoformat()


def mix(rng: random.Random) -> tuple[str, str, str, bytes]:
    """One request of the mix: (kind, method, path, body)."""
    roll = rng.random()
    if roll < 0.80:
        nid = DATASET if rng.random() < 0.8 else rng.choice(LIVE)
        query = f"?as_of={random_day(rng)}" if rng.random() < 0.75 else ""
        if query and rng.random() < 0.2:
            query += "&known_at=2026-01-01T00:00:00Z"
        return "state", "GET", f"/v1/negotiations/{nid}/state{query}", b""
    if roll < 0.95:
        nid = DATASET if rng.random() < 0.8 else rng.choice(LIVE)
        return "events", "GET", f"/v1/negotiations/{nid}/events?limit={rng.choice((20, 50, 100))}", b""
    body = {
        "type": "statement_made", "occurred_on": random_day(rng), "speaker": {"name": "Load Tester", "party": "US"},
        "paraphrase": f"load statement {uuid.uuid4().hex[:12]}", "source": {"name": "bench", "kind": "analyst"},
    }
    return "append", "POST", f"/v1/negotiations/{rng.choice(LIVE)}/events", msgspec.json.encode(body)


async def connection(base_url: str, key: str, until: float, tally: Tally, seed: int, baseline: bool) -> None:
    url = urlsplit(base_url)
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    auth = f"Authorization: Bearer {key}\r\n"
    try:
        while time.perf_counter() < until:
            kind, method, path, body = ("ping", "GET", "/v1/ping", b"") if baseline else mix(rng)
            head = f"{method} {path} HTTP/1.1\r\nHost: {url.hostname}\r\n{auth}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            started = time.perf_counter()
            try:
                writer.write(head.encode() + body)
                status = await read_response(reader)
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                tally.add(kind, time.perf_counter() - started, False)
                writer.close()
                reader, writer = await asyncio.open_connection(url.hostname, url.port)
                continue
            tally.add(kind, time.perf_counter() - started, status == (201 if method == "POST" else 200))
    finally:
        writer.close()


class PeakRss:
    """Samples the resident memory of a process and its children (workers) until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self, pid: int) -> int:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return 0
        own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0) * 1024
        return own + sum(self._rss(int(child)) for child in children)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self._rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def drive(base_url: str, key: str, seconds: float, connections: int, baseline: bool = False) -> Tally:
    tally = Tally()

    async def all_connections() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(*(connection(base_url, key, until, tally, seed, baseline) for seed in range(connections)))

    asyncio.run(all_connections())
    return tally


def prepare(base_url: str, key: str) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for nid in LIVE:
            response = http.post("/v1/negotiations", json={"id": nid, "title": f"Live {nid}", "parties": ["US", "CN"]})
            assert response.status_code == 201, response.text


def start_baseline(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # the server `parley serve` runs (granian, one worker, uvloop, HTTP/1.1), serving one trivial route
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--http", "1",
               "--no-ws", "--log-level", "warning", "--port", str(port), "bench.baseline_app:create_baseline"]
    with (workdir / "baseline.log").open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base_url}/v1/ping", timeout=1)
            return process, base_url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the baseline server did not start")


def measure(name: str, url: str, workdir: Path, seconds: float, connections: int) -> list[str]:
    subprocess.run([sys.executable, "-m", "service", "demo", "load", "--database", url], check=True, capture_output=True)
    key = create_key(url, f"load-{uuid.uuid4().hex[:6]}", "reporter")
    # the baseline runs just before and just after the mix (Parley stopped), so that a machine whose speed drifts
    # (a shared host) is measured on both sides of it
    before = baseline(workdir, key, seconds, connections)
    process, base_url = start_server(url, workdir / f"{name}.log", env=SERVED)
    try:
        prepare(base_url, key)
        with PeakRss(process.pid) as rss:
            tally = drive(base_url, key, seconds, connections)
    finally:
        stop_server(process)
    after = baseline(workdir, key, seconds, connections)
    rate, base_rate = tally.count / seconds, (before.count + after.count) / (2 * seconds)
    everything = [x for values in tally.latencies.values() for x in values]
    lines = [
        f"{name}: {connections} connections, {seconds:.0f} s: {rate:,.0f} req/s, p50 {percentile(everything, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(everything, 0.99) * 1000:.1f} ms, errors {tally.error_count}, peak RSS {rss.peak / 2**20:.0f} MiB",
    ]
    for kind in ("state", "events", "append"):
        values = tally.latencies.get(kind, [])
        lines.append(
            f"  {kind:<7} {len(values) / seconds:>8,.0f} req/s  {len(values) / max(tally.count, 1):>4.0%}  p50 {percentile(values, 0.5) * 1000:7.1f} ms"
            f"  p99 {percentile(values, 0.99) * 1000:7.1f} ms  errors {tally.errors.get(kind, 0)}"
        )
    pings = before.latencies["ping"] + after.latencies["ping"]
    lines.append(
        f"  baseline (trivial litestar route, same server), before and after the mix: {before.count / seconds:,.0f} and "
        f"{after.count / seconds:,.0f} req/s, p50 {percentile(pings, 0.5) * 1000:.1f} ms, "
        f"errors {before.error_count + after.error_count}; mix/baseline (their mean) = {rate / base_rate:.3f}"
    )
    return lines


def baseline(workdir: Path, key: str, seconds: float, connections: int) -> Tally:
    """The same connections against the trivial route, served as Parley is (its own server, started and stopped)."""
    process, url = start_baseline(workdir)
    try:
        return drive(url, key, seconds, connections, baseline=True)
    finally:
        stop_server(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    lines = [f"load test, measured {dt.date.today().isoformat()}: 80% state/as_of reads, 15% event lists, 5% appends"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines += measure("SQLite", str(workdir / "load.db"), workdir, args.seconds, args.connections)
        if not args.skip_postgres:
            drop_postgres_tables(POSTGRES_URL)
            lines += measure("PostgreSQL", POSTGRES_URL, workdir, args.seconds, args.connections)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
