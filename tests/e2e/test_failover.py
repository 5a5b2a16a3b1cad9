"""Two `parley project` processes: one follows, the other stands by and takes over when the first is SIGKILLed."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import time

import pytest

from events.payloads import DeadlineSet, MeasureChanged, NegotiationOpened
from service.followers.leases import open_lease
from service.followers.views import open_view_tables
from projections.state import fold
from service.followers.tables import VIEWS
from service.stores import open_log
from tests.support.process import log_lines, start_projector, stop_server
from service.settings import Settings

pytestmark = pytest.mark.slow

TAKEOVER_TIMEOUT = 10.0


def _append(log, start: int, count: int) -> int:
    for n in range(start, start + count):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=n)
        log.record("talks", [
            DeadlineSet(occurred_on=day, deadline_id=f"d{n % 4}", title="D", due_on=day + dt.timedelta(days=400)),
            MeasureChanged(occurred_on=day, measure_id=f"m{n % 3}", kind="tariff", status="in_force", imposed_by="US",
                           applies_to="CN", rate_pct=float(n), effective_from=day),
        ], principal="test", request_id="r")
    return log.head()


def _holders(log) -> set[str | None]:
    found = set()
    for name in VIEWS:
        lease = open_lease(log.env, name)
        try:
            found.add(lease.holder())
        finally:
            lease.release()
    return found


def _wait(check, timeout: float) -> float:
    """Seconds until `check()` held; fails the test past the timeout."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_the_standby_projector_takes_over_when_the_active_one_is_killed(database_url, tmp_path):
    log = open_log(Settings(database_url=database_url))
    tables = open_view_tables(log)
    host = socket.gethostname()
    first = second = None
    try:
        log.record("talks", [NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title="Talks", parties=("US", "CN"))],
                   principal="test", request_id="r")
        head = _append(log, 0, 10)
        first = start_projector(database_url, tmp_path / "first.log")
        _wait(lambda: _holders(log) == {f"{host}:{first.pid}"}, 30)
        second = start_projector(database_url, tmp_path / "second.log")
        assert len(log_lines(tmp_path / "second.log", "lease_waiting")) == len(VIEWS)
        _wait(lambda: all(tables.position(spec) == head for spec in VIEWS.values()), 30)
        assert log_lines(tmp_path / "second.log", "lease_acquired") == []

        first.send_signal(signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), dt.datetime.now(dt.UTC)
        first.wait(10)
        head = _append(log, 10, 10)
        caught_up = _wait(lambda: all(tables.position(spec) == head for spec in VIEWS.values()), TAKEOVER_TIMEOUT)
        taken_over = time.monotonic() - killed_at
        assert _holders(log) == {f"{host}:{second.pid}"}
        acquired = log_lines(tmp_path / "second.log", "lease_acquired")
        assert len(acquired) == len(VIEWS)
        lease_after = max(dt.datetime.fromisoformat(str(line["timestamp"])) - killed_wall for line in acquired).total_seconds()
        store = "postgres" if database_url.startswith("postgresql") else "sqlite"
        print(f"\n{store}: the standby held every lease {lease_after:.2f} s after the kill and followed the new events "
              f"{taken_over:.2f} s after it ({caught_up:.2f} s after the appends ended)")

        stop_server(second)
        assert second.returncode == 0, "SIGTERM stops a projector cleanly"
        assert _holders(log) == {None}
        records = [a.record for a in log.stream("talks", after_version=0, limit=1000)[0]]
        today = dt.datetime.now(dt.UTC).date()
        for spec in VIEWS.values():
            key = lambda row, spec=spec: tuple(str(row[k]) for k in spec.key)
            assert sorted(tables.rows(spec), key=key) == sorted(spec.rows(fold(records), today), key=key)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()


def test_a_projector_for_one_view_leaves_the_others_to_another(database_url, tmp_path):
    log = open_log(Settings(database_url=database_url))
    host = socket.gethostname()
    measures = everything = None
    try:
        measures = start_projector(database_url, tmp_path / "measures.log", views=("measures",))
        everything = start_projector(database_url, tmp_path / "all.log")
        assert [line["follower"] for line in log_lines(tmp_path / "all.log", "lease_waiting")] == ["measures"]
        leases = {name: open_lease(log.env, name) for name in VIEWS}
        assert {name: lease.holder() for name, lease in leases.items()} == {
            name: f"{host}:{(measures if name == 'measures' else everything).pid}" for name in VIEWS
        }
        for lease in leases.values():
            lease.release()
    finally:
        for process in (measures, everything):
            if process is not None:
                stop_server(process)
        log.close()
