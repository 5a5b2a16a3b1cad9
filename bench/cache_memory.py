"""The answer cache's memory bound under 100,000 distinct questions, against the same server without a cache.

Serves `parley serve` on SQLite holding the shipped dataset (granian, one worker), twice, one after the
other: with the answer cache bounded at `--cache-mib` (16 MiB by default, a quarter of the default bound, so
that the run passes it many times over) and with `PARLEY_ANSWER_CACHE_BYTES=0`. Each is asked the same
`--questions` distinct questions of `GET /state` (every read model, the largest answer) over 16 keep-alive
connections: `as_of` one day each, walking on from 2024-09-01 (the record's first days, then the days past its
end, whose answers carry the state at the end; no two questions share a cache key), and `known_at` for one in
ten a random instant of the record's recording times (the record as it stood then: a refold), for the others an
instant of their own after the last recording. Printed for each: the worker's peak RSS (VmHWM) and its RSS at the end, the
cache's own accounting from `/metrics` (`parley_answer_cache_bytes`, entries, hits, misses), and the peak
RSS with the cache as a ratio of the peak without it. Run by hand (a few minutes):

    .venv/bin/python -m bench.cache_memory
    .venv/bin/python -m bench.cache_memory --questions 20000 --cache-mib 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.side_by_side import BASE, Case, _tree, cpu_seconds, drive
from tests.support.process import create_key, start_server, stop_server

SERVED = {"PARLEY_LOG_LEVEL": "warning", "PARLEY_RATE_LIMIT": "0"}
FIRST_AS_OF = dt.date(2024, 9, 1)


def _status_kib(pid: int, field: str) -> int:
    """A `VmHWM` / `VmRSS` line of /proc/<pid>/status, in KiB, summed over the process and its children."""
    total = 0
    for each in _tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _cache_figures(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics").text
    wanted = ("parley_answer_cache_bytes", "parley_answer_cache_entries", "parley_answer_cache_hits_total",
              "parley_answer_cache_misses_total", "parley_answer_cache_bound_bytes")
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            found[name] = found.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return found


def run(store: str, workdir: Path, key: str, questions: int, cache_bytes: int, recorded: tuple[dt.datetime, dt.datetime]) -> dict[str, float]:
    env = {**SERVED, "PARLEY_ANSWER_CACHE_BYTES": str(cache_bytes)}
    process, base_url = start_server(store, workdir / f"parley-{cache_bytes}.log", env=env, workers=1)
    try:
        first, last = recorded
        span = (last - first).total_seconds()
        asked = [0]

        def question(rng: random.Random) -> tuple[str, dict[str, str]]:
            n = asked[0]
            if n >= questions:
                return "/health", {}  # the run is over: the last connections idle on a trivial route
            asked[0] += 1
            as_of = FIRST_AS_OF + dt.timedelta(days=n)
            if n % 10 == 0:  # one in ten as the record stood at a random moment of its recording (a refold)
                known_at = first + dt.timedelta(seconds=rng.uniform(0, span))
            else:  # the rest as it stands now, each at an instant of its own after the last recording
                known_at = last + dt.timedelta(seconds=1, microseconds=n)
            return f"{BASE}/state?as_of={as_of}&known_at={known_at.isoformat().replace('+00:00', 'Z')}", {}

        started, cpu = time.perf_counter(), cpu_seconds(process.pid)
        while asked[0] < questions:
            # in slices, so the run ends soon after the last question
            result = drive(base_url, process.pid, Case("questions", "parley", question), 5.0, {"Authorization": f"Bearer {key}"})
            if result.errors:
                raise SystemExit(f"{result.errors} requests failed: {result.statuses}")
        figures = _cache_figures(base_url)
        figures.update(
            peak_kib=_status_kib(process.pid, "VmHWM"), rss_kib=_status_kib(process.pid, "VmRSS"),
            seconds=time.perf_counter() - started, cpu_ms=(cpu_seconds(process.pid) - cpu) * 1000 / questions,
        )
        return figures
    finally:
        stop_server(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--cache-mib", type=float, default=16)
    args = parser.parse_args()
    bound = int(args.cache_mib * 1024 * 1024)
    print(f"answer cache memory, measured {dt.date.today().isoformat()}: {args.questions:,} distinct questions "
          f"(/state, as_of one day each from {FIRST_AS_OF}, known_at distinct, 1 in 10 a past moment), granian one worker, SQLite", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        store = str(workdir / "parley.db")
        subprocess.run([sys.executable, "-m", "service", "demo", "load", "--database", store], check=True, capture_output=True)
        key = create_key(store, f"memory-{uuid.uuid4().hex[:6]}", "reader")
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as http:
            process, base_url = start_server(store, workdir / "probe.log", env=SERVED, workers=1)
            try:
                items = http.get(f"{base_url}{BASE}/events?limit=1000").json()["items"]
            finally:
                stop_server(process)
        times = sorted(dt.datetime.fromisoformat(item["recorded_at"].replace("Z", "+00:00")) for item in items)
        recorded = (times[0], times[-1])
        rows = []
        for label, cache_bytes in ((f"cache bound {args.cache_mib:g} MiB", bound), ("no cache (baseline)", 0)):
            figures = run(store, workdir, key, args.questions, cache_bytes, recorded)
            rows.append((label, figures))
            cached = (
                f"cache {figures.get('parley_answer_cache_bytes', 0) / 2**20:.2f} MiB accounted "
                f"(bound {figures.get('parley_answer_cache_bound_bytes', 0) / 2**20:.0f}), "
                f"{figures.get('parley_answer_cache_entries', 0):,.0f} entries, "
                f"hits {figures.get('parley_answer_cache_hits_total', 0):,.0f} misses {figures.get('parley_answer_cache_misses_total', 0):,.0f}"
                if cache_bytes else "cache off"
            )
            print(f"  {label:<24} peak RSS {figures['peak_kib'] / 1024:7.1f} MiB  RSS at the end {figures['rss_kib'] / 1024:7.1f} MiB  "
                  f"{figures['seconds']:.0f} s ({args.questions / figures['seconds']:,.0f} req/s, server CPU {figures['cpu_ms']:.2f} ms a question)  {cached}",
                  flush=True)
        with_cache, without = rows[0][1], rows[1][1]
        print(f"  peak RSS with the cache / without: {with_cache['peak_kib'] / without['peak_kib']:.2f} "
              f"(+{(with_cache['peak_kib'] - without['peak_kib']) / 1024:.1f} MiB for a {args.cache_mib:g} MiB bound)")


if __name__ == "__main__":
    main()
