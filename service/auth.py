"""Access keys: hashed at rest, three roles, checked by route guards."""

from __future__ import annotations

import datetime as dt
import hashlib
import mmap
import os
import secrets
import sqlite3
import threading
import time
from typing import Annotated, Any, Literal

import msgspec
from eventsourcing.persistence import IntegrityError

from events.application import ParleyLog, is_postgres_env, sqlite_file
from events.datastores import file_faults
from events.errors import KeyNameTakenError, KeyNotFoundError
from events.payloads import KeyCreated, KeyRevoked

Role = Literal["reader", "reporter", "admin"]
KeyName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Who the key belongs to; becomes recorded_by.")]
RANK: dict[str, int] = {"reader": 1, "reporter": 2, "admin": 3}
KEY_PREFIX = "pk_"
_CACHE_SECONDS = 1.0
_TOKEN_BYTES = 16
NOT_CACHED = object()  # what KeyStore.lookup_now answers when only a read in a worker thread can tell


class Principal(msgspec.Struct, frozen=True):
    name: str
    role: str
    key_id: str | None


ANONYMOUS = Principal(name="anonymous", role="reader", key_id=None)


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    role: str
    created_at: str
    created_by: str
    key: str


def _digest(secret: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 is a safe at-rest form (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def fingerprint(key_hash: str) -> str:
    """What the key_created event records of a key's at-rest digest, so `verify` can check the row."""
    return hashlib.sha256(b"parley key fingerprint\0" + key_hash.encode()).hexdigest()


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class KeyAtRest(msgspec.Struct, frozen=True, kw_only=True):
    """A keys-table row as `verify` compares it with the key events: the secret's digest only as its fingerprint."""

    id: str
    name: str
    role: str
    fingerprint: str
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None


class KeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: KeyName
    role: Role


class RevocationToken:
    """16 bytes beside an SQLite file (`<database>-keys`, mapped in memory) that every process serving the file
    shares: a revocation writes new ones after it commits, so each process drops the keys it has let in before
    its next request, without asking the database on every request."""

    def __init__(self, database: str) -> None:
        fd = os.open(f"{database}-keys", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _TOKEN_BYTES:
                os.ftruncate(fd, _TOKEN_BYTES)
            self._map = mmap.mmap(fd, _TOKEN_BYTES)
        finally:
            os.close(fd)

    def current(self) -> bytes:
        return self._map[:_TOKEN_BYTES]

    def change(self) -> None:
        self._map[:_TOKEN_BYTES] = secrets.token_bytes(_TOKEN_BYTES)

    def close(self) -> None:
        self._map.close()


def _revocation_token(database: str | None) -> RevocationToken | None:
    """The file's token; None (each request reads its key) in memory, or where the file beside it cannot be made."""
    if database is None:
        return None
    try:
        return RevocationToken(database)
    except OSError:
        return None


class KeyStore:
    """Keys in the parley_keys table of the event store's database."""

    def __init__(self, log: ParleyLog) -> None:
        self._log = log
        self._run = log.run
        # digest -> (the revocation token read before the row, or None for a refusal; when (time.monotonic); who or None)
        self._remembered: dict[str, tuple[bytes | None, float, Principal | None]] = {}
        self._lock = threading.Lock()
        # On an SQLite file: a connection of its own for `lookup_now`, opened on first use
        self._quick_path = None if is_postgres_env(log.env) else sqlite_file(log.env.get("SQLITE_DBNAME", ""))
        self._quick: sqlite3.Connection | None = None
        self._quick_faults = 0  # the file's fault count when the connection was opened
        self._quick_file = file_faults(self._quick_path) if self._quick_path is not None else None
        self._quick_lock = threading.Lock()
        self._token = _revocation_token(self._quick_path)

    def _now(self) -> dt.datetime:
        return self._log.clock().astimezone(dt.UTC)

    def create(self, *, name: str, role: str, created_by: str) -> NewKey:
        if self._run("SELECT id FROM parley_keys WHERE name = ?", (name,)):
            raise KeyNameTakenError(name)
        secret, now = KEY_PREFIX + secrets.token_urlsafe(32), self._now()
        record = NewKey(
            id="key_" + secrets.token_hex(6), name=name, role=role, created_at=stamp(now), created_by=created_by, key=secret
        )
        digest = _digest(secret)
        row = (
            "INSERT INTO parley_keys (id, name, role, key_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, name, role, digest, record.created_at, created_by),
        )
        event = KeyCreated(occurred_on=now.date(), key_id=record.id, name=name, role=role, fingerprint=fingerprint(digest))  # type: ignore[arg-type]
        try:
            self._log.record_system([event], principal=created_by, request_id=f"key-{record.id}", at=now, side_statements=[row])
        except IntegrityError as error:  # the UNIQUE(name) constraint: a concurrent create won
            raise KeyNameTakenError(name) from error
        return record

    def list(self, *, after: str = "", limit: int = 100) -> list[KeyRecord]:
        rows = self._run(
            "SELECT id, name, role, created_at, created_by, revoked_at, revoked_by FROM parley_keys "
            "WHERE name > ? ORDER BY name LIMIT ?",
            (after, limit),
        )
        return [KeyRecord(**row) for row in rows]

    def get(self, key_id: str) -> KeyRecord:
        rows = self._run(
            "SELECT id, name, role, created_at, created_by, revoked_at, revoked_by FROM parley_keys "
            "WHERE id = ? OR name = ?",
            (key_id, key_id),
        )
        if not rows:
            raise KeyNotFoundError(key_id)
        return KeyRecord(**rows[0])

    def revoke(self, key_id: str, *, revoked_by: str) -> KeyRecord:
        record = self.get(key_id)
        if record.revoked_at is None:
            now = self._now()
            row = (
                "UPDATE parley_keys SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
                (stamp(now), revoked_by, record.id),
            )
            self._log.record_system(
                [KeyRevoked(occurred_on=now.date(), key_id=record.id, name=record.name)],
                principal=revoked_by, request_id=f"key-{record.id}", at=now, side_statements=[row],
            )
            if self._token is not None:
                self._token.change()  # after the commit: a process that read the key before it reads it again
            with self._lock:
                self._remembered.clear()
        return self.get(record.id)

    def at_rest(self) -> list[KeyAtRest]:
        """Every row of the keys table, for `verify` to check against the key events."""
        rows = self._run(
            "SELECT id, name, role, key_hash, created_at, created_by, revoked_at, revoked_by FROM parley_keys ORDER BY id"
        )
        return [KeyAtRest(**{k: v for k, v in row.items() if k != "key_hash"}, fingerprint=fingerprint(row["key_hash"])) for row in rows]

    def count(self) -> int:
        return int(self._run("SELECT COUNT(*) AS n FROM parley_keys")[0]["n"])

    def lookup_now(self, secret: str) -> Principal | None | object:
        """Who holds `secret`, without waiting, for the event loop; NOT_CACHED when only `authenticate`, in a worker
        thread, can tell.

        None at once if the secret was refused less than a second ago: a refusal cannot go stale, as no one knows a
        secret before its key exists, and it spares the store a flood of wrong keys. On an SQLite file a key let in
        is kept for up to a second, and dropped at once when any process serving the file revokes a key (its
        RevocationToken changes); otherwise one indexed read on a connection of this store's own (WAL readers never
        wait for the writer). On PostgreSQL, an in-memory store, or the file busy or unreadable, NOT_CACHED: every
        request reads the key, so a revocation in another replica applies at once.
        """
        digest = _digest(secret)
        now = time.monotonic()
        token = self._token.current() if self._token is not None else b""
        with self._lock:
            remembered = self._remembered.get(digest)
        if remembered is not None and now - remembered[1] < _CACHE_SECONDS and remembered[0] in (None, token):
            return remembered[2]  # a refusal, or a key let in since the last revocation
        if self._quick_path is None or not self._quick_lock.acquire(blocking=False):
            return NOT_CACHED
        faults = self._quick_file
        try:
            if self._quick is not None and self._quick_faults != faults.count:
                self._close_quick()  # opened before a fault: SQLite would keep the file as it was then
            if self._quick is None:
                self._quick_faults = faults.count
                self._quick = sqlite3.connect(self._quick_path, timeout=0, isolation_level=None, check_same_thread=False)
                self._quick.row_factory = sqlite3.Row
            row = self._quick.execute(_LOOKUP, (digest,)).fetchone()
        except sqlite3.Error:
            self._close_quick()
            return NOT_CACHED
        finally:
            if faults.failing:
                self._close_quick()  # while the file is faulty, keep no connection open across requests
            self._quick_lock.release()
        return self._answer(digest, row, token if self._token is not None else None)

    def authenticate(self, secret: str) -> Principal | None:
        digest = _digest(secret)
        rows = self._run(_LOOKUP, (digest,))
        return self._answer(digest, rows[0] if rows else None, None)

    def _close_quick(self) -> None:
        if self._quick is not None:
            self._quick.close()
            self._quick = None

    def _answer(self, digest: str, row: Any, token: bytes | None) -> Principal | None:
        """Who the row says holds the key; a refusal is remembered, and an acceptance too when `token` (the
        revocation token read before the row: see revoke()) is given."""
        principal = Principal(name=row["name"], role=row["role"], key_id=row["id"]) if row is not None else None
        if principal is None or token is not None:
            with self._lock:
                if len(self._remembered) > 10_000:
                    self._remembered.clear()
                self._remembered[digest] = (None if principal is None else token, time.monotonic(), principal)
        return principal

    def close(self) -> None:
        with self._quick_lock:
            self._close_quick()
        if self._token is not None:
            self._token.close()


_LOOKUP = "SELECT id, name, role FROM parley_keys WHERE key_hash = ? AND revoked_at IS NULL"
