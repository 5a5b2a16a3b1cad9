"""The eventsourcing datastores, made to recover by themselves after a store fault.

SQLite opens a file read-only, without a word, when it may not write it, and keeps that
connection for good: after a statement fails for a reason other than a constraint (read-only,
disk full, I/O error), connections opened before the failure are closed when next taken, and
until a write commits again each connection serves one statement, so the next statements open
the file as it is now and the first write after the fault clears succeeds.

psycopg's pool reconnects with a backoff that doubles (1, 2, 4, 8 s, ...): after a restart the
service could stay down for as long again as the server was. Parley's pool gives up a reconnection
after a few seconds instead, and the next statement that needs a connection tries at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteConnection, SQLiteDatastore, SQLiteFactory

RECONNECT_GIVE_UP_SECONDS = 2.0


class WriteTurn:
    """The turn to write one SQLite file in this process, reentrant; a writer that goes first takes it before the others.

    The log's commits go first: a client waits on each, while the views and the webhook relay follow the log
    whenever they get the turn, and take more events per transaction the longer they wait. Under a busy event
    loop a writer holds the turn many times its own CPU (each statement gives up the GIL and waits to get it
    back), so without an order the appends queued behind every follower's batch: measured at 64 connections,
    the followers held the turn 42 % of the time and an append waited 41 ms for it at the median (0.01 ms since).
    The others are not starved: the log's writer releases the turn after each commit and gathers its next
    group before asking again, and a waiting follower takes the turn in that gap.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._first_waiting = 0

    def acquire(self, *, first: bool = False, timeout: float = -1) -> bool:
        me = threading.get_ident()
        with self._changed:
            if self._owner == me:
                self._depth += 1
                return True
            self._first_waiting += first
            try:
                free = self._changed.wait_for(
                    lambda: self._owner is None and (first or not self._first_waiting), None if timeout < 0 else timeout
                )
            finally:
                self._first_waiting -= first
            if not free:
                return False
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._changed:
            self._depth -= 1
            if not self._depth:
                self._owner = None
                self._changed.notify_all()


class _FileFaults:
    """What every datastore on one SQLite file in this process knows of its faults.

    Shared, because SQLite shares a file's state between all of a process's connections to it (the
    WAL index among them): one connection left open from the fault, in any datastore, keeps the
    file read-only for every connection the process opens later.
    """

    _by_file: dict[str, _FileFaults] = {}
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.count = 0
        self.failing = False  # from a fault until a write commits again
        self.datastores: weakref.WeakSet[RenewingSQLiteDatastore] = weakref.WeakSet()
        # One writer at a time in this process (the log's group commit, the views, the webhook tables): SQLite
        # lets one write transaction in, and a writer that finds the file locked backs off in sleeps of up to
        # 100 ms, however soon the lock frees. Waiting here instead takes the file the moment it frees.
        self.write_turn = WriteTurn()

    def fault(self) -> None:
        """Connections opened until now are stale: close the idle ones now; those in use go when put back or next taken."""
        self.count += 1
        self.failing = True
        for datastore in list(self.datastores):
            datastore.close_idle_connections()

    @classmethod
    def of(cls, db_name: str) -> _FileFaults:
        with cls._lock:
            return cls._by_file.setdefault(os.path.realpath(db_name), cls())


def file_faults(db_name: str) -> _FileFaults:
    """What this process knows of the faults of an SQLite file, for a connection of its own outside the datastores
    (`count` of faults so far, `failing` until a write commits again): one opened before a fault, or while it
    lasts, must be closed, not kept."""
    return _FileFaults.of(db_name)


class RenewingSQLiteDatastore(SQLiteDatastore):
    """Connections opened before a store fault, or while it lasts, are closed instead of reused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes_first = False  # the log's own datastore: its writes take the file's turn before the followers'
        self._file = _FileFaults() if self.pool.is_sqlite_memory_mode else _FileFaults.of(self.pool.db_name)
        self._file.datastores.add(self)

    def close_idle_connections(self) -> None:
        pool = self.pool
        with pool._put_condition:  # eventsourcing 9.5.6's pool has no public way to drop only its idle connections
            while pool._pool:
                pool._pool.popleft().close()

    @contextmanager
    def get_connection(self, *, commit: bool) -> Iterator[SQLiteConnection]:
        if self.pool.is_sqlite_memory_mode:  # an in-memory database lives only in its connections
            with super().get_connection(commit=commit) as conn:
                yield conn
            return
        turn = self._file.write_turn if commit else None
        if turn is not None and not turn.acquire(first=self.writes_first, timeout=self.pool.lock_timeout or 5):
            raise OperationalError(f"no write turn on {self.pool.db_name} within {self.pool.lock_timeout} s")
        try:
            conn = self._fresh_connection(commit)
            try:
                yield conn
            except IntegrityError:
                raise
            except (PersistenceError, sqlite3.Error):
                self._file.fault()
                raise
            else:
                if commit:
                    self._file.failing = False
            finally:
                if self._file.failing:
                    conn.close()
                self.pool.put_connection(conn)
        finally:
            if turn is not None:
                turn.release()

    def _fresh_connection(self, commit: bool) -> SQLiteConnection:
        while True:
            conn = self.pool.get_connection(is_writer=commit)
            if not hasattr(conn, "parley_faults_seen"):
                conn.parley_faults_seen = self._file.count  # type: ignore[attr-defined]
            if conn.parley_faults_seen == self._file.count:  # type: ignore[attr-defined]
                return conn
            conn.close()
            self.pool.put_connection(conn)


class ParleySQLiteFactory(SQLiteFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        configured = self.datastore
        self.datastore = RenewingSQLiteDatastore(
            db_name=configured.pool.db_name,
            lock_timeout=configured.pool.lock_timeout,
            single_row_tracking=configured.single_row_tracking,
            originator_id_type=configured.originator_id_type,  # type: ignore[arg-type]
        )
        configured.close()


class ParleyPostgresFactory(PostgresFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore.pool.reconnect_timeout = RECONNECT_GIVE_UP_SECONDS
