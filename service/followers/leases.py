"""Leases: which process follows the log for a named follower, so several copies can run and one works.

PostgreSQL: a session-level advisory lock held on a connection of its own; SQLite: `flock` on a
file beside the database. Either way the server or the OS lets go the moment the holding process
dies, so a standby takes over without anyone having to notice the death. Correctness never rests
on a lease (tracking is written with the rows); a lease only keeps two processes from doing the
same work.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from events.application import is_postgres_env


def this_process() -> str:
    """How a holder is named: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease(Protocol):
    name: str

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process holds it now."""
        ...

    def held(self) -> bool:
        """Whether this process still holds the lease it acquired."""
        ...

    def holder(self) -> str | None:
        """host:pid of whoever holds the lease now, None when nobody does, "unknown" when the store cannot tell."""
        ...

    def release(self) -> None:
        ...


class PostgresLease:
    """`pg_try_advisory_lock` on a dedicated autocommit connection; the lock lives as long as that session."""

    APPLICATION_PREFIX = "parley-lease "
    # pg_locks shows a bigint advisory key as two 32-bit halves; parameters: (key >> 32, key & 0xFFFFFFFF)
    GRANTED_KEY = "l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1"

    def __init__(self, name: str, connect: Callable[..., Any]) -> None:
        self.name = name
        self.key = lease_key(name)
        self._connect = connect
        self._connection: Any = None

    def _conn(self) -> Any:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect(application_name=(self.APPLICATION_PREFIX + this_process())[:63])
        return self._connection

    def _key_halves(self) -> tuple[int, int]:
        return self.key >> 32, self.key & 0xFFFFFFFF

    def acquire(self) -> bool:
        import psycopg

        try:
            return bool(self._conn().execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])
        except psycopg.Error:
            self._close()
            return False

    def held(self) -> bool:
        import psycopg

        if self._connection is None:
            return False
        try:
            row = self._connection.execute(
                f"SELECT count(*) FROM pg_locks l WHERE {self.GRANTED_KEY} AND l.pid = pg_backend_pid()", self._key_halves(),
            ).fetchone()
        except psycopg.Error:
            self._close()
            return False
        return bool(row[0])

    def holder(self) -> str | None:
        import psycopg

        try:
            row = self._conn().execute(
                f"SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE {self.GRANTED_KEY} "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                self._key_halves(),
            ).fetchone()
        except psycopg.Error:
            self._close()
            return "unknown"
        if row is None:
            return None
        return str(row[0]).removeprefix(self.APPLICATION_PREFIX) or "unknown"

    def release(self) -> None:
        self._close()  # ending the session releases its advisory locks

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


class FileLease:
    """An exclusive `flock` on `<database>-lease-<name>`; the file also names its holder for status."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._fd: int | None = None
        self._locked = False

    def acquire(self) -> bool:
        if self._fd is not None and not self._same_file():  # removed or replaced since we opened it
            self._close()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not self._same_file():  # replaced between open and lock: try the new file next time
            self._close()
            return False
        self._locked = True
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, this_process().encode(), 0)
        return True

    def held(self) -> bool:
        return self._locked and self._same_file()

    def _same_file(self) -> bool:
        if self._fd is None:
            return False
        try:
            return os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def holder(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 300, 0).decode(errors="replace") or "unknown"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None and self.held():
            os.ftruncate(self._fd, 0)
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
            self._locked = False


class SoleLease:
    """A private in-memory database has one process by definition: the lease is always free."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._held = False

    def acquire(self) -> bool:
        self._held = True
        return True

    def held(self) -> bool:
        return self._held

    def holder(self) -> str | None:
        return this_process() if self._held else None

    def release(self) -> None:
        self._held = False


def lease_key(name: str) -> int:
    """A stable non-negative 63-bit advisory-lock key for a follower's name."""
    digest = hashlib.blake2b(f"parley-lease:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def open_lease(env: Mapping[str, str], name: str) -> Lease:
    """The lease named `name` in the store described by an eventsourcing environment (`ParleyLog.env`)."""
    if is_postgres_env(env):
        return PostgresLease(name, postgres_connector(env))
    path = env.get("SQLITE_DBNAME", "")
    if path in ("", ":memory:") or path.startswith("file:"):
        return SoleLease(name)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return FileLease(name, Path(f"{path}-lease-{safe}"))


def postgres_connector(env: Mapping[str, str]) -> Callable[..., Any]:
    """Connections for leases: autocommit, with keepalives on both ends so a vanished peer is noticed in seconds."""
    import psycopg

    def connect(**extra: Any) -> Any:
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env.get("POSTGRES_HOST", "127.0.0.1"),
            port=env.get("POSTGRES_PORT", "5432"),
            user=env.get("POSTGRES_USER", "postgres"),
            password=env.get("POSTGRES_PASSWORD", ""),
            connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT", "5")),
            autocommit=True,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            options="-c statement_timeout=5000 -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
            **extra,
        )

    return connect
