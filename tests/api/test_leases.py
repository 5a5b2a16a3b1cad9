"""Leases: of several copies of a follower, one follows the log at a time; the next takes over when it goes."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import Notification

from events.application import ParleyLog, is_postgres_env
from events.payloads import MeasureChanged, NegotiationOpened
from service.followers.leases import PostgresLease, lease_key, open_lease, this_process
from service.followers.views import ViewRunner, ViewTables, open_view_tables
from projections.state import fold
from service.followers.tables import MEASURES
from service.stores import open_log
from service.settings import Settings


class CountingRunner(ViewRunner):
    """A measures runner that counts the events it applied itself."""

    def __init__(self, log: ParleyLog, tables: ViewTables) -> None:
        super().__init__(log, tables, MEASURES)
        self.applied = 0

    def apply(self, notifications: Sequence[Notification]) -> None:
        super().apply(notifications)
        self.applied += len(notifications)


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[ParleyLog, ViewTables]]:
    log = open_log(Settings(database_url=database_url))
    tables = open_view_tables(log)
    log.record("talks", [NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title="Talks", parties=("US", "CN"))],
               principal="test", request_id="r")
    yield log, tables
    tables.datastore.close()  # type: ignore[attr-defined]
    log.close()


def _append_measures(log: ParleyLog, count: int, start: int = 0) -> int:
    for n in range(start, start + count):
        log.record("talks", [MeasureChanged(occurred_on=dt.date(2025, 2, 1), measure_id=f"m{n % 3}", kind="tariff", status="in_force",
                                            imposed_by="US", applies_to="CN", rate_pct=float(n), effective_from=dt.date(2025, 2, 4))],
                   principal="test", request_id="r")
    return log.head()


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _lose_lease(log: ParleyLog, name: str) -> None:
    """What a holder sees when its database session ends, or someone removes its lock file."""
    env = log.env
    if is_postgres_env(env):
        key = lease_key(name)
        with psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                             user=env["POSTGRES_USER"], autocommit=True) as conn:
            ended = conn.execute(  # only this database's holder: under xdist another worker's database holds the same key
                f"SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l WHERE {PostgresLease.GRANTED_KEY} "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (key >> 32, key & 0xFFFFFFFF),
            ).fetchall()
        assert ended == [(True,)]
    else:
        open_lease(env, name).path.unlink()  # type: ignore[attr-defined]


def test_a_lease_has_one_holder_until_it_is_released(store):
    log, _ = store
    first, second, other = open_lease(log.env, "measures"), open_lease(log.env, "measures"), open_lease(log.env, "deadlines")
    try:
        assert first.holder() is None
        assert first.acquire()
        assert not second.acquire()
        assert second.holder() == this_process() and first.held() and not second.held()
        assert other.acquire(), "another name is another lease"
        first.release()
        assert first.holder() is None
        assert second.acquire() and second.held()
        assert not first.acquire()
    finally:
        for lease in (first, second, other):
            lease.release()


def test_a_holder_whose_session_ended_or_lock_file_went_has_lost_its_lease(store):
    log, _ = store
    holder, standby = open_lease(log.env, "measures"), open_lease(log.env, "measures")
    try:
        assert holder.acquire() and not standby.acquire()
        _lose_lease(log, "measures")
        assert not holder.held()
        assert standby.acquire()
    finally:
        holder.release()
        standby.release()


def test_two_runners_of_a_view_follow_one_at_a_time_and_the_standby_takes_over(store):
    log, tables = store
    active, standby = CountingRunner(log, tables), CountingRunner(log, tables)
    active.start(lease_poll=0.1)
    try:
        assert _eventually(lambda: open_lease(log.env, "measures").holder() == this_process())
        standby.start(lease_poll=0.1)
        head = _append_measures(log, 20)
        assert _eventually(lambda: tables.position(MEASURES) == head)
        time.sleep(0.3)  # three of the standby's polls
        assert (active.applied, standby.applied) == (head, 0)
        active.stop()
        head = _append_measures(log, 20, start=20)
        assert _eventually(lambda: tables.position(MEASURES) == head)
        assert active.applied == 21 and standby.applied == head - active.applied
    finally:
        active.stop()
        standby.stop()
    records = [a.record for a in log.stream("talks", after_version=0, limit=1000)[0]]
    key = lambda row: row["measure_id"]
    assert sorted(tables.rows(MEASURES), key=key) == sorted(MEASURES.rows(fold(records), dt.datetime.now(dt.UTC).date()), key=key)


def test_a_runner_that_lost_its_lease_stops_following_until_it_wins_it_again(store):
    log, tables = store
    runner = CountingRunner(log, tables)
    runner.start(lease_poll=0.5)
    thief = open_lease(log.env, "measures")
    try:
        head = _append_measures(log, 5)
        assert _eventually(lambda: tables.position(MEASURES) == head)
        _lose_lease(log, "measures")
        assert thief.acquire(), "the lease is free once its holder's session or file is gone"
        time.sleep(1.0)  # two of the runner's checks: it has noticed
        _append_measures(log, 5, start=5)
        time.sleep(1.0)
        assert tables.position(MEASURES) == head, "a runner without its lease does not follow"
        thief.release()
        head = log.head()
        assert _eventually(lambda: tables.position(MEASURES) == head)
    finally:
        thief.release()
        runner.stop()


def test_a_runner_stopped_gives_up_its_lease(store):
    log, tables = store
    runner = CountingRunner(log, tables)
    runner.start(lease_poll=0.1)
    assert _eventually(lambda: open_lease(log.env, "measures").holder() == this_process())
    runner.stop()
    lease: Any = open_lease(log.env, "measures")
    try:
        assert lease.holder() is None and lease.acquire()
    finally:
        lease.release()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_runner_that_missed_its_wake_up_catches_up_by_itself(store, monkeypatch):
    """The library's subscription reads the log, then LISTENs: an event committed in between sends no NOTIFY to it."""
    from eventsourcing.postgres import PostgresSubscription

    log, tables = store
    listening_later, go_on = threading.Event(), threading.Event()
    listen = PostgresSubscription._listen

    def listen_after_a_pause(subscription: Any) -> None:
        listening_later.set()
        go_on.wait(10)
        listen(subscription)

    monkeypatch.setattr(PostgresSubscription, "_listen", listen_after_a_pause)
    runner = CountingRunner(log, tables)
    runner.start(lease_poll=0.2)
    try:
        assert listening_later.wait(10)
        assert _eventually(lambda: tables.position(MEASURES) == log.head())  # its first read is done
        head = _append_measures(log, 1)  # between that read and its LISTEN: no wake-up reaches it
        go_on.set()
        assert _eventually(lambda: tables.position(MEASURES) == head, timeout=15)  # it notices after 5 s of quiet
    finally:
        go_on.set()
        runner.stop()
