"""Store faults against a real `parley serve`: a PostgreSQL crash-restart, a read-only store, a full disk.

Each answers 503 with Retry-After while it lasts, loses no acknowledged event, writes nothing
half-way, and the service recovers by itself once the fault clears.
"""

from __future__ import annotations

import concurrent.futures as futures
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.process import create_key, start_server, stop_server
from tests.api.conftest import deadline
from tests.throwaway_postgres import ThrowawayPostgres

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT = 10.0
PROBLEM = "application/problem+json"


@dataclass
class Outcomes:
    """Every answer the clients got while a fault came and went."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, answered, status)
    acknowledged: dict[str, str] = field(default_factory=dict)  # idempotency key -> event_id
    refusals: list[httpx.Response] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)

    def answered(self, sent: float, response: httpx.Response) -> None:
        with self.lock:
            self.statuses.append((sent, time.monotonic(), response.status_code))
            if response.status_code != 201:
                self.refusals.append(response)

    def count(self, status: int) -> int:
        return sum(1 for _, _, s in self.statuses if s == status)


def append_until_acknowledged(client: httpx.Client, outcomes: Outcomes, key: str, body: dict[str, object], give_up: float) -> None:
    """A well-behaved client: on 503 it waits Retry-After and sends the same request with the same key."""
    while time.monotonic() < give_up:
        sent = time.monotonic()
        try:
            response = client.post("/v1/negotiations/talks/events", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as error:  # a timeout here is the hang the service must never give
            outcomes.transport_errors.append(f"{type(error).__name__}: {error}")
            continue
        outcomes.answered(sent, response)
        if response.status_code == 201:
            with outcomes.lock:
                outcomes.acknowledged[key] = response.json()["events"][0]["event_id"]
            return
        if response.status_code != 503:
            return
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 0.5))  # tests need not wait the full hint


def stored_stream(client: httpx.Client) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    cursor = None
    while True:
        page = client.get("/v1/negotiations/talks/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        events += page.json()["items"]
        cursor = page.json()["next"]
        if not cursor:
            return events


def assert_log_intact(client: httpx.Client) -> list[dict[str, object]]:
    """The hash chain verifies and the stream's versions run 1..n without a gap or a repeat."""
    verified = client.get("/v1/audit/verify")
    assert verified.status_code == 200 and verified.json()["ok"], verified.text
    events = stored_stream(client)
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    return events


def assert_store_problem(response: httpx.Response, title: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["title"] == title, response.json()
    assert "nothing was stored" in response.json()["detail"]


# --- PostgreSQL restarted under load ----------------------------------------------------------


def test_postgres_crash_restart_during_1000_appends_loses_no_acknowledged_event(throwaway_postgres: ThrowawayPostgres, tmp_path: Path) -> None:
    url = throwaway_postgres.url
    admin = create_key(url, "admin", "admin")
    process, base_url = start_server(
        url, tmp_path / "server.log",
        env={"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "PARLEY_STORE_TIMEOUT": "2"},
    )
    headers = {"Authorization": f"Bearer {admin}"}
    outcomes = Outcomes()
    readiness: list[int] = []
    view_reads: list[int] = []
    restarted: list[tuple[float, float]] = []
    done = threading.Event()
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
            assert client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).status_code == 201

        def writer(w: int) -> None:
            give_up = time.monotonic() + 240
            with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
                for i in range(250):
                    append_until_acknowledged(client, outcomes, f"w{w}-{i}", deadline(f"w{w}-{i}"), give_up)

        def crash_when_busy() -> None:
            while len(outcomes.acknowledged) < 200 and not done.is_set():
                time.sleep(0.05)
            restarted.append(throwaway_postgres.restart(down_for=3.0))

        def probe(path: str, params: dict[str, int], statuses: list[int]) -> None:
            # each on its own: a request waiting out the store's timeout must not keep the other from asking
            with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
                while not done.is_set():
                    statuses.append(client.get(path, params=params).status_code)
                    time.sleep(0.2)

        with futures.ThreadPoolExecutor(7) as pool:
            crash = pool.submit(crash_when_busy)
            probes = [pool.submit(probe, "/ready", {}, readiness), pool.submit(probe, "/v1/deadlines", {"limit": 1}, view_reads)]
            writers = [pool.submit(writer, w) for w in range(4)]
            for job in writers:
                job.result()
            done.set()
            crash.result()
            for job in probes:
                job.result()

        assert outcomes.transport_errors == [], outcomes.transport_errors[:5]
        assert {status for _, _, status in outcomes.statuses} <= {201, 503}
        assert outcomes.count(503) > 0, "the restart happened while no request was in flight: the test proved nothing"
        for refusal in outcomes.refusals:
            assert_store_problem(refusal, "Store unavailable")
        assert 503 in readiness and readiness[-1] == 200
        assert set(view_reads) <= {200, 503}  # a view read while the store is away is no 500 either (it may land between outages)

        (_, up_at), = restarted
        recovered_at = min(answered for sent, answered, status in outcomes.statuses if status == 201 and sent >= up_at)
        recovery = recovered_at - up_at
        print(f"\nPostgreSQL crash-restart: {outcomes.count(503)} answers 503 while down; "
              f"first append acknowledged {recovery:.2f} s after the server accepted connections again")
        assert recovery < 10.0

        assert len(outcomes.acknowledged) == 1000
        with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
            events = assert_log_intact(client)
            stored = [e["event_id"] for e in events[1:]]
            assert len(stored) == 1000 and len(set(stored)) == 1000  # each request stored exactly once
            assert set(outcomes.acknowledged.values()) == set(stored)
            head = events[-1]["position"]
            caught_up = client.get("/v1/deadlines", params={"min_position": head, "limit": 1})
            assert caught_up.status_code == 200, caught_up.text  # the view runner came back by itself
    finally:
        done.set()
        stop_server(process)


# --- a store that cannot be written ------------------------------------------------------------


@dataclass
class Fault:
    """A store fault that can be switched on and off under a running server."""

    database_url: str
    title: str
    on: object
    off: object
    wrapper: tuple[str, ...] = ()


def _without_capabilities() -> tuple[str, ...]:
    # Root ignores file modes; a root process without capabilities obeys them, and still reaches root's Python.
    return ("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--") if os.geteuid() == 0 else ()


@pytest.fixture(params=["sqlite", "postgres"])
def read_only_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fault]:
    """SQLite: a database file the server may read but not write. PostgreSQL: the server turned read-only (as a standby is)."""
    if request.param == "sqlite":
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            pytest.skip("setpriv is needed to run the server as root without capabilities")
        path = tmp_path / "parley.db"
        # in WAL mode the database is three files, and SQLite creates the other two with the database's mode
        files = [path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")]

        def writable(mode: int) -> None:
            for file in files:
                if file.exists():
                    file.chmod(mode)

        yield Fault(str(path), "Store read-only", lambda: writable(0o444), lambda: writable(0o644), _without_capabilities())
        return
    cluster: ThrowawayPostgres = request.getfixturevalue("throwaway_postgres")

    def read_only(on: bool) -> None:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
            conn.execute("SELECT pg_reload_conf()")

    yield Fault(cluster.url, "Store read-only", lambda: read_only(True), lambda: read_only(False))


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Fault]:
    """A small tmpfs holding the SQLite file, filled up by another file: writes fail with ENOSPC.

    32 MiB, so that the store's own files (the WAL grows to about 4 MiB between checkpoints) fit until the
    filler takes the rest; at 4 MiB the WAL alone sometimes filled it before the fault was turned on.
    """
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "parley-full-disk", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    filler = mount_point / "filler"

    def fill() -> None:
        try:
            with filler.open("wb") as out:
                while True:
                    out.write(b"\0" * 1024 * 1024)
                    out.flush()
        except OSError:
            pass  # full: the fault is on

    try:
        yield Fault(str(mount_point / "parley.db"), "Store full", fill, lambda: filler.unlink(missing_ok=True))
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def _refuses_then_recovers(fault: Fault, tmp_path: Path, *, start_faulted: bool) -> None:
    admin = create_key(fault.database_url, "admin", "admin")
    env = {"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "PARLEY_STORE_TIMEOUT": "2"}
    headers = {"Authorization": f"Bearer {admin}"}
    process, base_url = start_server(fault.database_url, tmp_path / "before.log", env=env)
    with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
        assert client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).status_code == 201
        for i in range(20):
            assert client.post("/v1/negotiations/talks/events", json=deadline(f"before-{i}", consequence="x" * 2000)).status_code == 201
    if start_faulted:  # SQLite decides at open whether it may write the file
        stop_server(process)
        fault.on()  # type: ignore[operator]
        process, base_url = start_server(fault.database_url, tmp_path / "faulted.log", env=env, wrapper=fault.wrapper)
    else:
        fault.on()  # type: ignore[operator]
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
            before = stored_stream(client)
            body = deadline("during-the-fault", consequence="y" * 2000)
            for _ in range(3):
                refused = client.post("/v1/negotiations/talks/events", json=body, headers={"Idempotency-Key": "the-fault"})
                assert_store_problem(refused, fault.title)
            batch = client.post("/v1/negotiations/talks/events", json={"events": [deadline(f"batch-{i}") for i in range(5)]})
            assert_store_problem(batch, fault.title)
            assert client.get("/v1/negotiations/talks").status_code == 200  # reads go on
            assert assert_log_intact(client) == before  # nothing half-written

            fault.off()  # type: ignore[operator]
            give_up = time.monotonic() + 10  # PostgreSQL sessions take a reloaded setting at their next command
            while (retried := client.post("/v1/negotiations/talks/events", json=body, headers={"Idempotency-Key": "the-fault"})).status_code == 503:
                assert_store_problem(retried, fault.title)
                assert time.monotonic() < give_up, "the store was writable again but the service did not recover"
                time.sleep(0.2)
            assert retried.status_code == 201, retried.text
            after = assert_log_intact(client)
            assert [e["event_id"] for e in after] == [e["event_id"] for e in before] + [retried.json()["events"][0]["event_id"]]
    finally:
        stop_server(process)


def test_a_read_only_store_answers_503_naming_it_and_the_retry_succeeds_once_writable(read_only_store: Fault, tmp_path: Path) -> None:
    _refuses_then_recovers(read_only_store, tmp_path, start_faulted=read_only_store.database_url.endswith(".db"))


def test_a_full_disk_answers_503_naming_it_and_the_retry_succeeds_once_space_is_freed(full_disk: Fault, tmp_path: Path) -> None:
    _refuses_then_recovers(full_disk, tmp_path, start_faulted=False)
