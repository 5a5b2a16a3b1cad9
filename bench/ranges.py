"""Over-large chart ranges: the 400 against the same server's cheapest route, in the same run.

Serves `parley serve` (granian, as bench.load does) holding the shipped dataset, on SQLite and on
PostgreSQL, and sends, one request at a time on a keep-alive connection, rounds of: `/health` (the
baseline: no key, no store), the chart asked for 1800-01-01 to 2999-12-31 (SVG and PNG), a range one
day over the 3,660-day limit, and a `from` that does not parse (the cheapest 400 the route gives).
Prints p50 and p99 of each and each as a ratio of the baseline's; then, for scale, what the work
those 400s refuse costs: the default chart and a chart at the limit (200s, a few samples). PostgreSQL
is $PARLEY_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test); its Parley tables are
dropped first. Run:

    .venv/bin/python -m bench.ranges                   # both stores
    .venv/bin/python -m bench.ranges --rounds 50 --skip-postgres   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.load import percentile
from bench.rawhttp import RawClient
from tests.support.process import create_key, drop_postgres_tables, start_server, stop_server

POSTGRES_URL = os.environ.get("PARLEY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHART = "/v1/negotiations/us-china-trade-2025/charts/tariffs"
# name -> (path, status expected)
REFUSED = {
    "svg 1800-01-01..2999-12-31": (f"{CHART}.svg?from=1800-01-01&to=2999-12-31", 400),
    "png 1800-01-01..2999-12-31": (f"{CHART}.png?from=1800-01-01&to=2999-12-31", 400),
    "svg one day over the limit": (f"{CHART}.svg?from=2015-01-01&to=2025-01-09", 400),
    "svg from that does not parse": (f"{CHART}.svg?from=1800-13-01&to=2999-12-31", 400),
}
WORKED = {
    "svg default range": (f"{CHART}.svg", 200),
    "svg at the limit (3,660 days)": (f"{CHART}.svg?from=2016-06-01&to=2026-06-09", 200),
}
SERVED = {"PARLEY_LOG_LEVEL": "warning", "PARLEY_RATE_LIMIT": "0"}


def timed(client: RawClient, path: str, expected: int, samples: list[float]) -> None:
    started = time.perf_counter()
    status, body = client.request("GET", path)
    samples.append(time.perf_counter() - started)
    if status != expected:
        raise RuntimeError(f"{path}: {status} (expected {expected}): {body[:300]!r}")


def line(name: str, samples: list[float], base: list[float] | None) -> str:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    text = f"  {name:<32} n={len(samples):<5} p50 {p50 * 1000:8.2f} ms  p99 {p99 * 1000:8.2f} ms"
    if base is not None:
        text += f"  ratio to /health: p50 {p50 / percentile(base, 0.5):6.2f}  p99 {p99 / percentile(base, 0.99):6.2f}"
    return text


def measure(name: str, url: str, workdir: Path, rounds: int, worked_rounds: int) -> list[str]:
    subprocess.run([sys.executable, "-m", "service", "demo", "load", "--database", url], check=True, capture_output=True)
    key = create_key(url, f"ranges-{uuid.uuid4().hex[:6]}", "reader")
    process, base_url = start_server(url, workdir / f"{name}.log", env=SERVED)
    samples: dict[str, list[float]] = {"/health": [], **{case: [] for case in (*REFUSED, *WORKED)}}
    try:
        with RawClient(base_url, {"Authorization": f"Bearer {key}"}) as client:
            for _ in range(20):  # warm up: the state folded, the routes' first answers given
                for path, expected in (*REFUSED.values(), ("/health", 200)):
                    client.request("GET", path)
            timed(client, WORKED["svg default range"][0], 200, [])
            for _ in range(rounds):  # interleaved, so that noise on the machine falls on every case alike
                timed(client, "/health", 200, samples["/health"])
                for case, (path, expected) in REFUSED.items():
                    timed(client, path, expected, samples[case])
            for _ in range(worked_rounds):
                for case, (path, expected) in WORKED.items():
                    timed(client, path, expected, samples[case])
    finally:
        stop_server(process)
    base = samples["/health"]
    lines = [f"{name}: one keep-alive connection, requests one at a time, {rounds} rounds"]
    lines.append(line("/health (baseline)", base, None))
    lines += [line(case, samples[case], base) for case in REFUSED]
    lines.append(f"  the work a 400 refuses ({worked_rounds} rounds):")
    lines += [line(case, samples[case], base) for case in WORKED]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--worked-rounds", type=int, default=10)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    lines = [f"chart ranges, measured {dt.date.today().isoformat()}: over-large ranges (400) against /health"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines += measure("SQLite", str(workdir / "ranges.db"), workdir, args.rounds, args.worked_rounds)
        if not args.skip_postgres:
            drop_postgres_tables(POSTGRES_URL)
            lines += measure("PostgreSQL", POSTGRES_URL, workdir, args.rounds, args.worked_rounds)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
