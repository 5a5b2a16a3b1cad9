"""Every process role at once on one PostgreSQL, with SIGKILLs mid-run: nothing lost, nothing doubled, views exact.

Three `parley serve` API processes (no runners inside), two `parley project`, two `parley deliver`, a
webhook receiver on 127.0.0.1, and concurrent clients making 5,000 single-event appends, each with
an Idempotency-Key they retry on another API process after a connection error. Mid-run one API
process, the active projector and the deliverer holding the relay lease are SIGKILLed and restarted.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from events.payloads import NegotiationOpened
from service.followers.leases import open_lease
from service.followers.views import open_view_tables
from projections.state import fold
from service.followers.tables import VIEWS
from service.stores import open_log
from service.auth import KeyStore
from tests.support.process import (
    log_lines,
    start_deliverer,
    start_projector,
    start_server,
    stop_server,
)
from service.settings import Settings
from service.webhooks.store import RELAY, open_webhook_tables
from tests.api.test_webhooks import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.serial]

# PARLEY_SCALE_APPENDS makes a smaller smoke run on a busy machine; the acceptance figure is 5,000.
APPENDS = int(os.environ.get("PARLEY_SCALE_APPENDS", "5000"))
NEGOTIATIONS = 6
CLIENTS = 24
KILL_AFTER = APPENDS * 3 // 10  # acknowledged appends before the kills


def _body(item: int) -> bytes:
    day = dt.date(2025, 1, 1) + dt.timedelta(days=item % 300)
    common = {"occurred_on": day.isoformat(), "summary": f"item {item}"}
    if item % 2:
        event = {"type": "deadline_set", "deadline_id": f"d{item % 40}", "title": "Deadline",
                 "due_on": (day + dt.timedelta(days=500)).isoformat(), **common}
    else:
        event = {"type": "measure_changed", "measure_id": f"m{item % 20}", "kind": "tariff", "status": "in_force",
                 "imposed_by": "US", "applies_to": "CN", "rate_pct": item % 100, "effective_from": day.isoformat(), **common}
    return json.dumps(event).encode()


@dataclass
class Clients:
    """Concurrent clients appending items 0..APPENDS-1, each retried with its key until some API process answers 201."""

    base_urls: list[str]
    key: str
    acknowledged: dict[int, str] = field(default_factory=dict)  # item -> event_id
    retries: int = 0
    connection_errors: int = 0
    refused: list[str] = field(default_factory=list)
    _items: itertools.count = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        sessions = [httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {self.key}"}) for url in self.base_urls]
        try:
            while (item := next(self._items)) < APPENDS:
                self._append(sessions, item)
        finally:
            for session in sessions:
                session.close()

    def _append(self, sessions: list[httpx.Client], item: int) -> None:
        headers = {"content-type": "application/json", "idempotency-key": f"scale-{item}"}
        for attempt in itertools.count():
            # Each negotiation has a home API process (writers of one stream in several processes only
            # collide); a connection error sends the retry on to the next process.
            session = sessions[(item % NEGOTIATIONS + attempt) % len(sessions)]
            try:
                response = session.post(f"/v1/negotiations/n{item % NEGOTIATIONS}/events", content=_body(item), headers=headers)
            except httpx.TransportError:
                response = None
                with self._lock:
                    self.connection_errors += 1
            if response is not None and response.status_code == 201:
                with self._lock:
                    self.acknowledged[item] = response.json()["events"][0]["event_id"]
                return
            if response is not None and response.status_code != 503:
                self.refused.append(f"item {item}: {response.status_code} {response.text[:300]}")
                return
            with self._lock:
                self.retries += 1
            time.sleep(0.05)


def _started(start, attempts: int = 10):
    """Start a process, again if it exits during startup: a shared server may refuse connections for a while."""
    for attempt in range(attempts):
        try:
            return start()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            time.sleep(3)


def _holder_pid(log, name: str) -> int | None:
    lease = open_lease(log.env, name)
    try:
        holder = lease.holder()
    finally:
        lease.release()
    host_pid = (holder or "").rsplit(":", 1)
    return int(host_pid[1]) if len(host_pid) == 2 else None


def _holders_among(log, names: tuple[str, ...], pids: dict[int, str], timeout: float = 60) -> dict[str, int]:
    """The pid holding each lease, asked until each is one of `pids` (the store may not answer at once)."""
    deadline = time.monotonic() + timeout
    while True:
        holders = {name: _holder_pid(log, name) for name in names}
        if all(pid in pids for pid in holders.values()):
            return holders  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"no known holder: {holders}"
        time.sleep(0.1)


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_every_role_in_several_processes_survives_sigkills_without_loss_or_doubles(database_url, tmp_path: Path):
    started = time.monotonic()
    seed = base64.b64encode(os.urandom(32)).decode()
    # A sender renews its lease at half-time through a slow batch; a short lease only makes it renew more often.
    # Small pools: eight processes share the server's connections with whatever else runs there. Not
    # smaller: each runner's LISTEN (and each API process's log tail) holds a connection of the log's pool
    # while it follows. An overflow of 4, as docs/operations.md sizes it for PostgreSQL's default 100: at
    # the default 10 the API processes' bursts took every connection and the leases' own were refused.
    env = {
        "PARLEY_SIGNING_KEY": seed, "PARLEY_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "PARLEY_WEBHOOK_LEASE": "15",
        "PARLEY_POOL_SIZE": "2", "PARLEY_POOL_MAX_OVERFLOW": "4", "PARLEY_LOG_LEVEL": "info",
    }
    api_env = {**env, "PARLEY_RUN_PROJECTIONS": "0", "PARLEY_RUN_WEBHOOKS": "0", "PARLEY_POOL_SIZE": "2",
               "PARLEY_LOG_LEVEL": "warning", "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "unused.key")}
    receiver = Receiver()
    receiver.start()
    log = open_log(Settings(database_url=database_url, pool_size=1))
    tables = open_view_tables(log)
    relay_tables = open_webhook_tables(log)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        keys = KeyStore(log)
        admin = keys.create(name="admin", role="admin", created_by="test").key
        reporter = keys.create(name="desk", role="reporter", created_by="test").key
        for n in range(NEGOTIATIONS):
            log.record(f"n{n}", [NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title=f"N{n}", parties=("US", "CN"))],
                       principal="test", request_id="seed")
        ports: list[int] = []
        for n in range(3):
            processes[f"api{n}"], base_url = _started(lambda n=n: start_server(database_url, tmp_path / f"api{n}.log", env=api_env))
            ports.append(int(base_url.rsplit(":", 1)[1]))
        base_urls = [f"http://127.0.0.1:{port}" for port in ports]
        created = httpx.post(f"{base_urls[0]}/v1/webhooks", headers={"Authorization": f"Bearer {admin}"},
                             json={"url": receiver.url, "event_types": ["event.deadline_set", "event.measure_changed"]})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        for name in ("project0", "project1"):
            processes[name] = _started(lambda name=name: start_projector(database_url, tmp_path / f"{name}.log", env=env))
        for name in ("deliver0", "deliver1"):
            processes[name] = _started(lambda name=name: start_deliverer(database_url, tmp_path / f"{name}.log", env=env))
        _wait(lambda: all(_holder_pid(log, name) for name in [*VIEWS, RELAY]), 60, "every lease to be held")
        ready_at = time.monotonic()

        clients = Clients(base_urls, reporter)
        threads = [threading.Thread(target=clients.run, daemon=True) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        _wait(lambda: len(clients.acknowledged) >= KILL_AFTER, 600, f"{KILL_AFTER} acknowledged appends")
        by_pid = {process.pid: name for name, process in processes.items()}
        holders = _holders_among(log, ("measures", RELAY), by_pid)
        victims = ["api0", by_pid[holders["measures"]], by_pid[holders[RELAY]]]
        for name in victims:
            processes[name].send_signal(signal.SIGKILL)
        killed_wall = dt.datetime.now(dt.UTC)
        for name in victims:
            processes[name].wait(10)
        for name in victims:
            if name.startswith("project"):
                processes[name] = _started(lambda name=name: start_projector(database_url, tmp_path / f"{name}-again.log", env=env))
            elif name.startswith("deliver"):
                processes[name] = _started(lambda name=name: start_deliverer(database_url, tmp_path / f"{name}-again.log", env=env))
        processes["api0"], _ = _started(lambda: start_server(database_url, tmp_path / "api0-again.log", port=ports[0], env=api_env))
        for thread in threads:
            thread.join(600)
        appended_at = time.monotonic()
        assert clients.refused == []
        assert len(clients.acknowledged) == APPENDS

        head = log.head()
        _wait(lambda: all(tables.position(spec) == head for spec in VIEWS.values()) and relay_tables.position() == head,
              60, "the views and the relay to reach the head")
        wanted = {f"event.{event_id}" for event_id in clients.acknowledged.values()}
        _wait(lambda: wanted <= {h["webhook-id"] for h, _ in list(receiver.received)}, 120, "every webhook message")
        delivered_at = time.monotonic()

        # Every acknowledged event stored exactly once, and each negotiation's versions contiguous.
        items: Counter[str] = Counter()
        stored: dict[str, list] = {}
        for n in range(NEGOTIATIONS):
            page, more = log.stream(f"n{n}", after_version=0, limit=10_000)
            assert more is None
            stored[f"n{n}"] = [a.record for a in page]
            assert [r.originator_version for r in stored[f"n{n}"]] == list(range(1, len(page) + 1))
            items.update(r.event.summary for r in stored[f"n{n}"] if r.event.summary)
        assert items == Counter({f"item {item}": 1 for item in range(APPENDS)})
        event_ids = {r.event_id for records in stored.values() for r in records if r.event.summary}
        assert event_ids == set(clients.acknowledged.values())

        # Every view equals a fold of the stored events.
        today = dt.datetime.now(dt.UTC).date()
        for spec in VIEWS.values():
            expected = [row for records in stored.values() for row in spec.rows(fold(records), today)]
            key = lambda row, spec=spec: tuple(str(row[k]) for k in spec.key)
            assert sorted(tables.rows(spec), key=key) == sorted(expected, key=key), spec.name

        # Every message delivered at least once, signed, a duplicate byte for byte the same message.
        bodies: dict[str, bytes] = {}
        for headers, body in receiver.received:
            assert bodies.setdefault(headers["webhook-id"], body) == body
            Webhook(secret).verify(body, headers)
        assert set(bodies) == wanted
        duplicates = len(receiver.received) - len(bodies)

        takeovers = {}
        for name in victims[1:]:
            standby = next(other for other in processes if other[:-1] == name[:-1] and other != name)
            acquired = [dt.datetime.fromisoformat(str(line["timestamp"])) for line in log_lines(tmp_path / f"{standby}.log", "lease_acquired")]
            later = [t for t in acquired if t > killed_wall]
            takeovers[name] = (max(later) - killed_wall).total_seconds() if later else None
        print(
            f"\n{APPENDS} appends from {CLIENTS} clients over 3 API processes in {appended_at - ready_at:.1f} s "
            f"({APPENDS / (appended_at - ready_at):.0f}/s), {clients.retries} retries ({clients.connection_errors} after connection errors); "
            f"views and relay at head {head}, every message delivered {delivered_at - appended_at:.1f} s after the last append, "
            f"{duplicates} duplicate deliveries; standby take-over after SIGKILL: "
            + ", ".join(f"{name} {seconds:.2f} s" if seconds is not None else f"{name} (restart won)" for name, seconds in takeovers.items())
            + f"; whole test {time.monotonic() - started:.0f} s"
        )
        # Only what the killed sender had in flight may arrive twice; rows both senders claimed would be thousands.
        assert duplicates <= 20, "two senders sharing the outbox must not both deliver the same rows"
    finally:
        for process in processes.values():
            if process.poll() is None:
                stop_server(process)
        relay_tables.datastore.close()
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()
        receiver.stop()
