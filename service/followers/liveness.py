"""Signs of life: a worker holds a lease under an id of its own while it lives, so others can tell at once that it is gone.

A webhook sender marks the outbox rows it claims with its id. When that id's lease is free, its holder
died (or stopped) and another sender may take the rows over at once instead of waiting for the claim to
expire. Ids are never reused, so a lease found free stays free.
"""

from __future__ import annotations

import glob
import secrets
from collections.abc import Collection, Mapping
from contextlib import suppress

from events.application import is_postgres_env
from service.followers.leases import FileLease, Lease, PostgresLease, lease_key, open_lease, postgres_connector, this_process


class Liveness:
    """One worker's sign of life: the lease `<role>-<id>`, taken under a fresh id when first needed and after a loss."""

    def __init__(self, env: Mapping[str, str], role: str) -> None:
        self._env = env
        self.role = role
        self.id: str | None = None
        self._lease: Lease | None = None

    def hold(self) -> str | None:
        """This worker's id, holding its lease; None while the store cannot give it one."""
        if self._lease is None:
            ident = f"{this_process()}:{secrets.token_hex(4)}"
            lease = self._open(self._name(ident))
            if not lease.acquire():  # a store that refuses, or a file another worker's sweep removed meanwhile
                lease.release()
                return None
            self.id, self._lease = ident, lease
            if isinstance(lease, FileLease):
                self._sweep(lease)
        return self.id

    def held(self) -> bool:
        """Whether the lease is still this worker's (a lost database session or a removed file lose it)."""
        return self._lease is not None and self._lease.held()

    def gone(self, ids: Collection[str]) -> set[str]:
        """Of other workers' ids, those whose lease nobody holds: their holders have died or stopped."""
        if not ids or self._lease is None:
            return set()
        names = {self._name(ident): ident for ident in ids}
        if isinstance(self._lease, _PostgresLiveLease):
            held = self._lease.held_keys([lease_key(name) for name in names])
            if held is None:
                return set()  # the store cannot tell: leave the rows to their claims' expiry
            return {ident for name, ident in names.items() if lease_key(name) not in held}
        if isinstance(self._lease, FileLease):
            found = set()
            for name, ident in names.items():
                lease = open_lease(self._env, name)
                if lease.holder() is None:
                    found.add(ident)
                    _remove(lease)
            return found
        return set()  # a private in-memory store: every worker of it lives in this process

    def release(self) -> None:
        """Let go (on a clean stop, or after a loss); the next `hold` takes a fresh id."""
        if self._lease is not None:
            lease, self._lease, self.id = self._lease, None, None
            if isinstance(lease, FileLease) and lease.held():
                _remove(lease)  # the id is never used again: leave no file behind
            lease.release()

    def _name(self, ident: str) -> str:
        return f"{self.role}-{ident}"

    def _open(self, name: str) -> Lease:
        if is_postgres_env(self._env):
            return _PostgresLiveLease(name, postgres_connector(self._env))
        return open_lease(self._env, name)

    def _sweep(self, mine: FileLease) -> None:
        """Remove the files of this role's workers that died holding no rows (nobody would ever look at them again)."""
        stem = open_lease(self._env, self._name(""))  # every id's file is this path with the id after it
        assert isinstance(stem, FileLease)
        for found in stem.path.parent.glob(glob.escape(stem.path.name) + "*"):
            other = FileLease(found.name, found)
            if found != mine.path and other.holder() is None:
                _remove(other)


class _PostgresLiveLease(PostgresLease):
    def held_keys(self, keys: list[int]) -> set[int] | None:
        """Which of these advisory-lock keys some session of this database holds (None when the store cannot tell)."""
        import psycopg

        try:
            rows = self._conn().execute(
                "SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = ANY(%s)",
                (keys,),
            ).fetchall()
        except psycopg.Error:
            return None
        return {row[0] for row in rows}


def _remove(lease: FileLease) -> None:
    with suppress(FileNotFoundError):
        lease.path.unlink()
