"""Scaling out on PostgreSQL: API workers for reads, API processes for appends, and granian vs uvicorn.

Prints, all measured in one run on one database:
- state reads and event-list reads (requests/s) against `parley serve --workers 1, 2, 4`, with
  the ratios 2w/1w and 4w/1w;
- single-event appends (events/s) against 1 and 3 separate `parley serve` processes on the same
  database, clients spread over them, with the ratio 3p/1p;
- the same app served by granian and by uvicorn (their own command lines, the same workers,
  loop and HTTP/1.1 parser), state reads and appends, with the ratio uvicorn/granian.
The embedded view runners and webhook relay are off (as in bench/append.py): this measures the
API. The load comes from several client processes on raw keep-alive sockets (bench/rawhttp.py).
Run: `.venv/bin/python -m bench.scaling [--seconds 10] [--clients 16] [--database URL]`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from bench.append import payload
from bench.rawhttp import RawClient
from tests.support.process import (
    create_key,
    drop_postgres_tables,
    free_port,
    start_server,
    stop_server,
)
from service.cli.serving import APP_FACTORY

POSTGRES_URL = os.environ.get("PARLEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEMO = "us-china-trade-2025"
READS = {
    "state": f"/v1/negotiations/{DEMO}/state?as_of=2025-07-28",
    "events": f"/v1/negotiations/{DEMO}/events?limit=100",
}
# The API alone, without the per-key rate limit (one bench key would hit it); pools small enough that
# 4 workers x 3 pools stay far below max_connections.
SERVER_ENV = {
    "PARLEY_LOG_LEVEL": "warning",
    "PARLEY_RATE_LIMIT": "0",
    "PARLEY_RUN_PROJECTIONS": "0",
    "PARLEY_RUN_WEBHOOKS": "0",
    "PARLEY_POOL_SIZE": "2",
    "PARLEY_POOL_MAX_OVERFLOW": "4",
}


class Window(msgspec.Struct, frozen=True):
    """When the clients start, stop counting warm-up requests, and stop (time.time() seconds)."""

    start: float
    count_from: float
    stop: float


def _client(kind: str, base_url: str, key: str, window: Window) -> int:
    """One keep-alive connection doing `kind` requests until the window closes; returns the requests counted."""
    with RawClient(base_url, {"Authorization": f"Bearer {key}"}) as http:
        if kind == "append":
            negotiation = f"scaling-{uuid.uuid4().hex[:10]}"
            status, body = http.request("POST", "/v1/negotiations", msgspec.json.encode({"id": negotiation, "title": "S", "parties": ["US"]}))
            assert status == 201, body
        if time.time() > window.count_from:
            raise RuntimeError("a client connected after the measurement began; the machine is too busy for this run")
        time.sleep(max(0.0, window.start - time.time()))
        counted = n = 0
        while (now := time.time()) < window.stop:
            if kind == "append":
                status, body = http.request("POST", f"/v1/negotiations/{negotiation}/events", msgspec.json.encode(payload(n)))
                assert status == 201, body
            else:
                status, body = http.request("GET", READS[kind])
                assert status == 200, body
            n += 1
            counted += now >= window.count_from
        return counted


def _client_process(kind: str, targets: Sequence[str], key: str, window: Window) -> int:
    with futures.ThreadPoolExecutor(len(targets)) as pool:
        return sum(pool.map(lambda url: _client(kind, url, key, window), targets))


def _started(_: int) -> int:
    return os.getpid()


def load(pool: futures.ProcessPoolExecutor, processes: int, kind: str, base_urls: Sequence[str], key: str, clients: int, seconds: float) -> float:
    """`clients` connections, spread evenly over the servers and over `processes` client processes; requests/s."""
    targets = [base_urls[c % len(base_urls)] for c in range(clients)]
    warm_up = min(1.0, seconds / 4)
    start = time.time() + 1.5  # every client connected and waiting
    window = Window(start=start, count_from=start + warm_up, stop=start + warm_up + seconds)
    shares = [targets[p::processes] for p in range(processes) if targets[p::processes]]
    counted = sum(pool.map(_client_process, [kind] * len(shares), shares, [key] * len(shares), [window] * len(shares)))
    return counted / seconds


@contextlib.contextmanager
def serving(url: str, workdir: Path, name: str, *, workers: int = 1, processes: int = 1, command: str | None = None) -> Iterator[list[str]]:
    """`processes` servers on the database, each with `workers` workers: `parley serve`, or `command` (granian|uvicorn)."""
    started = []
    try:
        for p in range(processes):
            port = free_port()
            argv = None if command is None else server_command(command, port, workers)
            started.append(start_server(url, workdir / f"{name}-{p}.log", port=port, env=SERVER_ENV, workers=workers, command=argv))
        yield [base_url for _, base_url in started]
    finally:
        for process, _ in started:
            stop_server(process)


def server_command(server: str, port: int, workers: int) -> list[str]:
    """The same app factory, workers, event loop and HTTP/1.1 on each server's own command line."""
    common = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--factory", "--loop", "uvloop", "--log-level", "warning"]
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws", *common, APP_FACTORY]
    return [sys.executable, "-m", "uvicorn", "--http", "httptools", "--no-access-log", *common, APP_FACTORY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case (3 for a smoke run)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the clients run in")
    parser.add_argument("--compare-workers", type=int, default=2, help="workers for the granian vs uvicorn comparison")
    parser.add_argument("--database", default=POSTGRES_URL, help="a scratch PostgreSQL database: its Parley tables are dropped")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float | None]] = []
    drop_postgres_tables(args.database)
    with tempfile.TemporaryDirectory() as tmp, futures.ProcessPoolExecutor(args.client_processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        workdir = Path(tmp)
        list(pool.map(_started, range(args.client_processes)))  # client processes up before any window opens
        subprocess.run([sys.executable, "-m", "service", "demo", "load", "--database", args.database], check=True, capture_output=True)
        key = create_key(args.database, "bench-scaling", "reporter")

        def measure(kind: str, base_urls: list[str]) -> float:
            return load(pool, args.client_processes, kind, base_urls, key, args.clients, args.seconds)

        for kind, unit in (("state", "req/s"), ("events", "req/s")):
            baseline = None
            for workers in (1, 2, 4):
                with serving(args.database, workdir, f"{kind}-{workers}w", workers=workers) as urls:
                    rate = measure(kind, urls)
                baseline = baseline or rate
                rows.append((f"{kind} reads, parley serve --workers {workers}", unit, rate, rate / baseline if workers > 1 else None))
        baseline = None
        for processes in (1, 3):
            with serving(args.database, workdir, f"append-{processes}p", processes=processes) as urls:
                rate = measure("append", urls)
            baseline = baseline or rate
            rows.append((f"appends, {processes} parley serve processes", "ev/s", rate, rate / baseline if processes > 1 else None))
        for kind, unit in (("state", "req/s"), ("append", "ev/s")):
            baseline = None
            for server in ("granian", "uvicorn"):
                with serving(args.database, workdir, f"{server}-{kind}", workers=args.compare_workers, command=server) as urls:
                    rate = measure(kind, urls)
                baseline = baseline or rate
                label = f"{'state reads' if kind == 'state' else 'appends'}, {server}, {args.compare_workers} workers"
                rows.append((label, unit, rate, rate / baseline if server != "granian" else None))
    print(f"{args.clients} clients in {args.client_processes} processes, {args.seconds:g} s per case")
    print(f"{'case':<52} {'rate':>10} {'':<6} {'ratio':>6}")
    for label, unit, rate, ratio in rows:
        print(f"{label:<52} {rate:>10.0f} {unit:<6} {'' if ratio is None else f'{ratio:.2f}':>6}")
    print("ratios: against --workers 1 (reads), 1 process (appends), granian (server comparison)")


if __name__ == "__main__":
    main()
