"""Parley side by side with the table a user would build (bench/peer_app.py) and a trivial route, in one run.

Serves, one after the other, each with granian and one worker: the trivial litestar route of bench.load
(`bench/baseline_app.py`); the peer (`bench/peer_app.py`: litestar + a psycopg pool over a PostgreSQL
table of measure periods, daterange + GiST, built from Parley's own answers on the shipped dataset, in
$PARLEY_BENCH_PEER_URL, default postgresql://postgres@127.0.0.1:5432/test); and `parley serve` on SQLite
holding the shipped dataset (`parley demo load`, PARLEY_RATE_LIMIT=0, views and webhooks inside, as
bench.load serves it). First it checks, on a few dates, that the peer's totals and measures equal Parley's.
The same client (raw HTTP/1.1 on keep-alive sockets, 16 connections, one asyncio loop) then runs each case
for --seconds:

    trivial route                     GET /v1/ping
    peer, random dates                GET /tariffs?as_of=D, D uniform over the record
    Parley tariffs, cold              GET .../state/tariffs?as_of=D, the record's days shuffled, each once per pass
    Parley tariffs, warm              the same with 20 popular dates 80% of the time, any day of the record 20%
    Parley /state, warm               GET .../state?as_of=D, the same mix
    Parley revalidation               GET .../state/tariffs?as_of=D (popular D) with If-None-Match: its ETag
    Parley events?limit=100           GET .../events?limit=100
    Parley timeline                   GET .../timeline
    Parley tariffs, all misses        GET .../state/tariffs?as_of=D, D uniform over the record, served by a second
                                      `parley serve` whose answer cache keeps nothing (PARLEY_ANSWER_CACHE_BYTES=1):
                                      every answer is folded, sourced and encoded for its request
    Parley /state, all misses         the same for GET .../state?as_of=D

and prints for each: req/s, p50/p99, errors, the ratio to the peer and to the trivial route, and the
server's CPU per request (utime+stime of the server and its workers from /proc, before and after); for
the misses also their CPU as a multiple of the peer's (the issue's 1 ms was 2.63 times the peer's 0.38 ms:
a host that slows down slows both). The peer and the two all-misses cases then run again back to back,
--rounds times (default 3): each miss's CPU over the peer's of the same round, and the median of those ratios,
so that a host drifting over the run's minutes does not decide the comparison.
Then it runs `python -m bench.load --seconds 20 --skip-postgres` and prints what it printed. Run:

    .venv/bin/python -m bench.side_by_side                 # 10 s a case, about 5 minutes in all
    .venv/bin/python -m bench.side_by_side --seconds 2 --skip-load   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.load import percentile, start_baseline
from bench.peer_app import load_peer_table
from bench.rawhttp import read_response
from tests.support.process import create_key, free_port, start_server, stop_server

PEER_URL = os.environ.get("PARLEY_BENCH_PEER_URL", "postgresql://postgres@127.0.0.1:5432/test")
NEGOTIATION = "us-china-trade-2025"
BASE = f"/v1/negotiations/{NEGOTIATION}"
SERVED = {"PARLEY_LOG_LEVEL": "warning", "PARLEY_RATE_LIMIT": "0"}
# an answer cache that keeps nothing: every answer is computed on its request, as the cache's misses are
MISSES = {"PARLEY_ANSWER_CACHE_BYTES": "1"}
CONNECTIONS = 16
POPULAR = 20

# one request: (path, extra headers)
Request = tuple[str, dict[str, str]]


@dataclass
class Case:
    name: str
    server: str  # "trivial" | "peer" | "parley" | "parley-miss"
    requests: Callable[[random.Random], Request]
    expect: int = 200
    note: str = ""


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    server_cpu: float = 0.0
    database_cpu: float = 0.0  # the peer's PostgreSQL backends (Parley's SQLite runs inside its server)
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """The server's CPU per request, in ms."""
        return self.server_cpu / max(len(self.latencies), 1) * 1000


# --- server CPU from /proc -------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(p for child in children for p in _tree(int(child)))]


def cpu_seconds(pid: int, others: tuple[int, ...] = ()) -> float:
    """utime + stime of a process and its descendants (granian's worker), and of `others`, in seconds."""
    ticks = 0
    for each in (*_tree(pid), *others):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5): utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# --- the load client --------------------------------------------------------------------------------


async def connection(base_url: str, case: Case, until: float, result: Result, seed: int, auth: dict[str, str]) -> None:
    url = urlsplit(base_url)
    rng = random.Random(seed)
    fixed = "".join(f"{k}: {v}\r\n" for k, v in auth.items())
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        while time.perf_counter() < until:
            path, headers = case.requests(rng)
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            head = f"GET {path} HTTP/1.1\r\nHost: {url.hostname}\r\n{fixed}{extra}\r\n"
            started = time.perf_counter()
            try:
                writer.write(head.encode())
                status = await read_response(reader)
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                result.latencies.append(time.perf_counter() - started)
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(url.hostname, url.port)
                continue
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status != case.expect:
                result.errors += 1
    finally:
        writer.close()


def backend_pids(database_url: str) -> tuple[int, ...]:
    """The PostgreSQL backends serving the peer's pool (its other connections to the database)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return tuple(pid for (pid,) in rows.fetchall())


def drive(base_url: str, pid: int, case: Case, seconds: float, auth: dict[str, str], backends: tuple[int, ...] = ()) -> Result:
    result = Result(seconds=seconds)

    async def all_connections() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(*(connection(base_url, case, until, result, seed, auth) for seed in range(CONNECTIONS)))

    cpu, database, client = cpu_seconds(pid), cpu_seconds(0, backends), time.process_time()
    asyncio.run(all_connections())
    result.server_cpu, result.client_cpu = cpu_seconds(pid) - cpu, time.process_time() - client
    result.database_cpu = cpu_seconds(0, backends) - database
    return result


# --- the cases ---------------------------------------------------------------------------------------


def record_days(parley_url: str, key: str) -> list[dt.date]:
    with httpx.Client(base_url=parley_url, headers={"Authorization": f"Bearer {key}"}) as http:
        first = dt.date.fromisoformat(http.get(BASE).json()["first_occurred_on"])
        last = dt.date.fromisoformat(http.get(f"{BASE}/state/tariffs").json()["coverage"]["record_through"])
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def popular_dates(days: list[dt.date]) -> list[str]:
    return [d.isoformat() for d in random.Random(18).sample(days, POPULAR)]


def cases(days: list[dt.date], popular: list[str], etags: dict[str, str | None]) -> list[Case]:
    every = [d.isoformat() for d in days]
    shuffled = every[:]
    random.Random(19).shuffle(shuffled)
    cold_next = iter(range(10**9))

    def realistic(rng: random.Random) -> str:
        return rng.choice(popular) if rng.random() < 0.8 else rng.choice(every)

    def cold(_: random.Random) -> Request:
        # shared by all connections: the days in one shuffled order, each asked once per pass
        return f"{BASE}/state/tariffs?as_of={shuffled[next(cold_next) % len(shuffled)]}", {}

    def revalidate(rng: random.Random) -> Request:
        day = rng.choice(popular)
        return f"{BASE}/state/tariffs?as_of={day}", {"If-None-Match": etags.get(day) or '"no-etag-was-given"'}

    supported = all(etags.get(day) for day in popular)
    return [
        Case("trivial route /v1/ping", "trivial", lambda rng: ("/v1/ping", {})),
        Case("peer /tariffs, random dates", "peer", lambda rng: (f"/tariffs?as_of={rng.choice(every)}", {})),
        Case("Parley /state/tariffs cold", "parley", cold, note=f"{len(every)} days, shuffled, each once per pass"),
        Case("Parley /state/tariffs warm", "parley", lambda rng: (f"{BASE}/state/tariffs?as_of={realistic(rng)}", {}),
             note=f"{POPULAR} dates 80%, any day 20%"),
        Case("Parley /state warm", "parley", lambda rng: (f"{BASE}/state?as_of={realistic(rng)}", {}), note="same mix"),
        Case("Parley If-None-Match", "parley", revalidate, expect=304 if supported else 200,
             note="304 expected" if supported else "not supported (200 with body)"),
        Case("Parley /events?limit=100", "parley", lambda rng: (f"{BASE}/events?limit=100", {})),
        Case("Parley /timeline", "parley", lambda rng: (f"{BASE}/timeline", {})),
        Case("Parley /state/tariffs, all misses", "parley-miss", lambda rng: (f"{BASE}/state/tariffs?as_of={rng.choice(every)}", {}),
             note="any day of the record; a cache that keeps nothing"),
        Case("Parley /state, all misses", "parley-miss", lambda rng: (f"{BASE}/state?as_of={rng.choice(every)}", {}),
             note="the same"),
    ]


def first_etags(parley_url: str, key: str, days: list[str]) -> dict[str, str | None]:
    """The ETag of a first answer on each day (None where Parley gives none)."""
    with httpx.Client(base_url=parley_url, headers={"Authorization": f"Bearer {key}"}) as http:
        return {day: http.get(f"{BASE}/state/tariffs?as_of={day}").headers.get("etag") for day in days}


def check_peer(parley_url: str, key: str, peer_url: str, days: list[dt.date]) -> list[str]:
    """The peer's totals and counted measures against Parley's on a few dates; raises on a difference."""
    lines = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as http:
        for day in days:
            ours = http.get(f"{parley_url}{BASE}/state/tariffs?as_of={day}").json()["tariffs"]["directions"]
            theirs = http.get(f"{peer_url}/tariffs?as_of={day}").json()["directions"]
            parley = {f"{d['imposed_by']}->{d['applies_to']}": (d["total_additional_pct"], sorted(m["measure_id"] for m in d["measures"]))
                      for d in ours if d["measures"]}
            peer = {k: (v["total"], sorted(m["measure_id"] for m in v["measures"])) for k, v in theirs.items()}
            if parley != peer:
                raise AssertionError(f"{day}: Parley {parley} but the peer {peer}")
            lines.append(f"  {day}: " + ", ".join(f"{k} {v[0]:g}% ({len(v[1])} measures)" for k, v in sorted(peer.items())))
    return lines


# --- the run -----------------------------------------------------------------------------------------


# The target for a miss (1 ms of server CPU) against the peer's CPU per request when it was set (0.38 ms):
# a host that runs slower or faster moves both, so the ratio is what a run on another day can be held to.
MISS_TARGET_PER_PEER = 1.0 / 0.38


def row(case: Case, result: Result, peer: float | None, trivial: float | None, peer_cpu: float | None = None) -> str:
    ms = [x * 1000 for x in result.latencies]
    ratio = lambda base: f"{result.rate / base:7.3f}" if base else "      -"
    per = result.cpu_ms
    line = (f"  {case.name:<31} {result.rate:>8,.0f} req/s  p50 {percentile(ms, 0.5):7.1f} ms  p99 {percentile(ms, 0.99):7.1f} ms"
            f"  /peer {ratio(peer)}  /trivial {ratio(trivial)}  server CPU {per:6.2f} ms/req ({result.server_cpu / result.seconds:.2f} cores)"
            f"  errors {result.errors}")
    if result.database_cpu:
        line += f"\n  {'':<31} + PostgreSQL backends {result.database_cpu / max(len(ms), 1) * 1000:.2f} ms/req ({result.database_cpu / result.seconds:.2f} cores)"
    if case.server == "parley-miss" and peer_cpu:
        line += (f"\n  {'':<31} server CPU per miss = {per / peer_cpu:.2f} x the peer's per request"
                 f" (the 1 ms target was {MISS_TARGET_PER_PEER:.2f} x when it was set)")
    statuses = ", ".join(f"{n} x {s}" for s, n in sorted(result.statuses.items()))
    return line + (f"\n  {'':<31} {case.note}; statuses {statuses}" if case.note else "")


def interleaved(
    servers: dict[str, tuple[str, int]], peer: Case, misses: list[Case], rounds: int, seconds: float,
    auth: dict[str, str], backends: tuple[int, ...],
) -> list[str]:
    """The peer and each all-misses case again, back to back, `rounds` times: a miss's CPU over the peer's measured
    seconds apart, not minutes (a host that drifts during the run moves both); the median over the rounds."""
    if rounds <= 0 or not misses:
        return []
    lines = [f"peer and misses interleaved, {rounds} rounds of {seconds:.0f} s a case (server CPU per request, and per miss"
             f" over the peer's of the same round; the 1 ms target was {MISS_TARGET_PER_PEER:.2f} x):"]
    ratios: dict[str, list[float]] = {case.name: [] for case in misses}
    for n in range(1, rounds + 1):
        url, pid = servers["peer"]
        peer_cpu = drive(url, pid, peer, seconds, {}, backends).cpu_ms
        parts = [f"peer {peer_cpu:.2f} ms"]
        for case in misses:
            url, pid = servers[case.server]
            cpu = drive(url, pid, case, seconds, auth).cpu_ms
            ratios[case.name].append(cpu / peer_cpu)
            parts.append(f"{case.name.removeprefix('Parley ')} {cpu:.2f} ms = {cpu / peer_cpu:.2f} x")
        lines.append(f"  round {n}: " + "; ".join(parts))
    for name, found in ratios.items():
        lines.append(f"  {name}: median {statistics.median(found):.2f} x the peer's CPU (rounds: "
                     + ", ".join(f"{r:.2f}" for r in found) + f"; target {MISS_TARGET_PER_PEER:.2f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="per case")
    parser.add_argument("--skip-load", action="store_true", help="leave out the bench.load run at the end")
    parser.add_argument("--rounds", type=int, default=3,
                        help="then the peer and the misses again, one after the other, this many times (0: none)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers (the finally below) on SIGTERM too
    out: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        out.append(line)

    say(f"side by side, measured {dt.date.today().isoformat()}: granian, one worker each, {CONNECTIONS} connections, "
        f"{args.seconds:.0f} s a case, loopback; Parley on SQLite, the peer on PostgreSQL")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        store = str(workdir / "parley.db")
        subprocess.run([sys.executable, "-m", "service", "demo", "load", "--database", store], check=True, capture_output=True)
        key = create_key(store, f"side-{uuid.uuid4().hex[:6]}", "reader")
        rows = load_peer_table(PEER_URL, NEGOTIATION, store)
        say(f"peer table: {rows} rows (measure periods) built from Parley's answers day by day over the record")

        parley, parley_url = start_server(store, workdir / "parley.log", env=SERVED, workers=1)
        port = free_port()
        peer_command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--http", "1",
                        "--no-ws", "--log-level", "warning", "--port", str(port), "bench.peer_app:create_peer_app"]
        peer, peer_url = start_server(store, workdir / "peer.log", port=port, command=peer_command,
                                      env={"PEER_DATABASE_URL": PEER_URL, "LITESTAR_WARN_SYNC_TO_THREAD_WITH_ASYNC": "0"})
        trivial, trivial_url = start_baseline(workdir)
        try:
            days = record_days(parley_url, key)
            say(f"record: {days[0]} .. {days[-1]} ({len(days)} days); the peer's answers against Parley's:")
            for line in check_peer(parley_url, key, peer_url, sorted(random.Random(6).sample(days, 8))):
                say(line)
            popular = popular_dates(days)
            all_cases = cases(days, popular, first_etags(parley_url, key, popular))
            backends = backend_pids(PEER_URL)
            servers = {"trivial": (trivial_url, trivial.pid), "peer": (peer_url, peer.pid), "parley": (parley_url, parley.pid)}
            rates: dict[str, float] = {}
            cpus: dict[str, float] = {}  # server CPU per request
            for case in all_cases:
                if case.server not in servers:  # served last, by itself: the first Parley has stopped
                    stop_server(parley)
                    parley, url = start_server(store, workdir / "parley-miss.log", env={**SERVED, **MISSES}, workers=1)
                    servers[case.server] = (url, parley.pid)
                url, pid = servers[case.server]
                auth = {"Authorization": f"Bearer {key}"} if case.server.startswith("parley") else {}
                result = drive(url, pid, case, args.seconds, auth, backends if case.server == "peer" else ())
                rates.setdefault(case.server, result.rate)
                cpus.setdefault(case.server, result.cpu_ms)
                say(row(case, result, rates.get("peer"), rates.get("trivial"), cpus.get("peer")))
                say(f"  {'':<31} load client CPU {result.client_cpu / result.seconds:.2f} cores")
            misses = [case for case in all_cases if case.server == "parley-miss"]
            peer_case = next(case for case in all_cases if case.server == "peer")
            for line in interleaved(servers, peer_case, misses, args.rounds, args.seconds, {"Authorization": f"Bearer {key}"}, backends):
                say(line)
        finally:
            for process in (trivial, peer, parley):
                stop_server(process)
    if not args.skip_load:
        say("$ .venv/bin/python -m bench.load --seconds 20 --skip-postgres")
        load = subprocess.run([sys.executable, "-m", "bench.load", "--seconds", "20", "--skip-postgres"],
                              check=True, capture_output=True, text=True)
        for line in load.stdout.splitlines():
            say(line)


if __name__ == "__main__":
    main()
