"""Rate limits per key, counted in the store so that every worker process and API replica shares one count.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one number): a quota of
`limit` requests per `window` seconds lets a key spend `interval = window / limit` per request. Each key
keeps its theoretical arrival time `tat`; a request at `now` is allowed when `max(tat, now) + interval`
is at most `window` ahead of `now`, and then that becomes the new `tat`. A fresh key may so burst the
whole quota at once; after that it gets one request every `interval`. The comparison allows half an
interval of slack, so float rounding never refuses the last request of a full burst.

The decision is one atomic statement: an upsert that reads the key's row under its row lock, decides,
writes and returns the new `tat` with the verdict. On PostgreSQL the row lives in an UNLOGGED table (no
WAL, emptied after a crash, which only forgives the counts); on SQLite in a small file beside the
database (WAL, synchronous=OFF), so counting never waits on the event writer's lock or its fsync.
If the counters cannot be reached the request goes through (fail open) and a warning is logged.

Settled in batches: a process does not write the count per request. It claims up to `batch` requests of a
key's quota at once (one statement: the same upsert with `batch` intervals; if that many no longer fit, one
more statement for a single request, so the last of the quota is claimed exactly) and lets that many through
from memory, on the event loop. A claim is kept at most `_CLAIM_SECONDS`; what a process claimed and did not
spend by then is dropped, not given back, so the shared count never under-counts. The batch is 1 % of the
limit (1 below a limit of 200, so small quotas settle every request): across processes a key gets at most its
quota in a burst, and can lose at most one batch per process per claim period to claims that expired unspent.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
import msgspec
import psycopg
import structlog
from litestar import Litestar
from litestar.types import Message, Scope, Send
from psycopg_pool import AsyncConnectionPool

from events.application import Clock, sqlite_file
from events.errors import StoreUnavailableError
from service.http.auth import key_principal
from service.http.problems import PROBLEM, FieldError, Problem
from service.http.requests import raw_header
from service.settings import Settings
from service.stores import create_private

# Everything else (/health, /ready, /metrics, the web page and its static files, /schema) is not limited.
LIMITED_PREFIX = "/v1/"
_COUNTER_TIMEOUT = 2.0
_WARN_EVERY = 10.0
# a claim's unspent requests are dropped after this long (they were counted when claimed)
_CLAIM_SECONDS = 1.0
# claims kept for this many keys and addresses at most; past it the expired ones go
_CLAIMS_KEPT = 10_000

_CREATE = (
    "CREATE {unlogged} TABLE IF NOT EXISTS parley_rate_limits ("
    "identity TEXT PRIMARY KEY, tat DOUBLE PRECISION NOT NULL, allowed BOOLEAN NOT NULL)"
)
_HIT = (
    "INSERT INTO parley_rate_limits AS r (identity, tat, allowed) VALUES ({identity}, {now} + {interval}, 1 = 1) "
    "ON CONFLICT (identity) DO UPDATE SET "
    "allowed = {greatest}(r.tat, {now}) + {interval} <= {now} + {reach}, "
    "tat = CASE WHEN {greatest}(r.tat, {now}) + {interval} <= {now} + {reach} "
    "THEN {greatest}(r.tat, {now}) + {interval} ELSE r.tat END "
    "RETURNING tat, allowed"
)
# A row whose tat has passed holds a full quota, exactly like no row at all.
_SWEEP = "DELETE FROM parley_rate_limits WHERE tat < {now}"


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # seconds until the whole quota is back, and (refused) until the next request is allowed
    reset: int
    retry_after: int


@dataclasses.dataclass(frozen=True)
class Quota:
    limit: int
    window: int

    @property
    def interval(self) -> float:
        return self.window / self.limit

    @property
    def batch(self) -> int:
        """How many requests a process claims at once: 1 % of the limit, 1 for limits under 200."""
        return max(1, self.limit // 100)

    def params(self, identity: str, now: float, count: int = 1) -> dict[str, Any]:
        """The upsert's parameters for claiming `count` requests at once (allowed only if all of them fit)."""
        return {"identity": identity, "now": now, "interval": self.interval * count, "reach": self.window + self.interval / 2}

    def decision(self, tat: float, allowed: bool, now: float) -> Decision:
        ahead = tat - now
        remaining = math.floor((self.window - ahead) / self.interval + 0.5)
        return Decision(
            allowed=allowed,
            limit=self.limit,
            remaining=min(self.limit, max(0, remaining)) if allowed else 0,
            reset=max(0, math.ceil(ahead)),
            retry_after=0 if allowed else max(1, math.ceil(ahead + self.interval / 2 - self.window)),
        )

    def headers(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        """draft-ietf-httpapi-ratelimit-headers (the RateLimit-Limit / -Remaining / -Reset fields)."""
        fields = {
            "ratelimit-limit": decision.limit,
            "ratelimit-remaining": decision.remaining,
            "ratelimit-reset": decision.reset,
            "ratelimit-policy": f"{self.limit};w={self.window}",
        }
        if not decision.allowed:
            fields["retry-after"] = decision.retry_after
        return [(name.encode(), str(value).encode()) for name, value in fields.items()]


class CountersUnavailableError(Exception):
    """The rate-limit counters cannot be read or written right now."""


class Counters(Protocol):
    async def hit(self, identity: str, now: float, count: int = 1) -> tuple[float, bool]:
        """Claim `count` requests at once; the key's new tat and whether they were (all) allowed."""
        ...

    async def close(self) -> None: ...


class PostgresCounters:
    """Counters in an UNLOGGED table of the event store's PostgreSQL database, through a small pool of their own."""

    def __init__(self, url: str, quota: Quota) -> None:
        self._quota = quota
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=4, open=False, timeout=_COUNTER_TIMEOUT, name="parley-rate-limits",
            kwargs={"autocommit": True, "connect_timeout": 2, "options": "-c statement_timeout=1000"},
        )
        self._hit_sql = _HIT.format(greatest="GREATEST", **_named("%({})s", "identity", "now", "interval", "reach"))
        self._sweep_sql = _SWEEP.format(now="%(now)s")
        self._created = False
        self._next_sweep = -math.inf

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def hit(self, identity: str, now: float, count: int = 1) -> tuple[float, bool]:
        try:
            with anyio.fail_after(_COUNTER_TIMEOUT):
                async with self._pool.connection() as connection:
                    if not self._created:
                        await connection.execute(_CREATE.format(unlogged="UNLOGGED"))
                        self._created = True
                    if now >= self._next_sweep:
                        self._next_sweep = now + self._quota.window
                        await connection.execute(self._sweep_sql, {"now": now})
                    cursor = await connection.execute(self._hit_sql, self._quota.params(identity, now, count))
                    tat, allowed = await cursor.fetchone()  # type: ignore[misc]
        except (psycopg.Error, OSError, TimeoutError) as error:
            raise CountersUnavailableError(f"{type(error).__name__}: {error}") from error
        return float(tat), bool(allowed)


class SQLiteCounters:
    """Counters in their own small SQLite file beside the database, written without fsync."""

    def __init__(self, path: str, quota: Quota) -> None:
        self._path = path
        self._quota = quota
        self._hit_sql = _HIT.format(greatest="MAX", **_named(":{}", "identity", "now", "interval", "reach"))
        self._sweep_sql = _SWEEP.format(now=":now")
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._next_sweep = -math.inf

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def hit(self, identity: str, now: float, count: int = 1) -> tuple[float, bool]:
        try:
            return await anyio.to_thread.run_sync(self._hit, identity, now, count)
        except (sqlite3.Error, OSError) as error:
            raise CountersUnavailableError(f"{type(error).__name__}: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        if self._path != ":memory:":
            create_private(Path(self._path))
        connection = sqlite3.connect(self._path, timeout=_COUNTER_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute(_CREATE.format(unlogged=""))
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def _hit(self, identity: str, now: float, count: int) -> tuple[float, bool]:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                if now >= self._next_sweep:
                    self._next_sweep = now + self._quota.window
                    self._connection.execute(self._sweep_sql, {"now": now})
                # fetchall() runs the statement to its end, which commits it
                ((tat, allowed),) = self._connection.execute(self._hit_sql, self._quota.params(identity, now, count)).fetchall()
            except sqlite3.Error:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
                raise
        return float(tat), bool(allowed)


def _named(style: str, *names: str) -> dict[str, str]:
    return {name: style.format(name) for name in names}


def create_postgres_counters(log: Any) -> None:
    """The counters' table on a PostgreSQL store (`parley migrate`); the limiter also creates it on first use."""
    log.store.run(_CREATE.format(unlogged="UNLOGGED"), commit=True)


def counters_path(database_url: str) -> str:
    """The SQLite file that holds the counters: beside the database, `<database>-ratelimit`."""
    path = sqlite_file(database_url)
    return ":memory:" if path is None else f"{path}-ratelimit"


@dataclasses.dataclass
class _Claim:
    """Requests of one key's quota this process has claimed and not spent yet."""

    unspent: int
    tat: float  # the shared tat right after the claim
    until: float  # the clock's time after which the unspent ones are dropped


@dataclasses.dataclass(frozen=True)
class Holder:
    """Whom a request is counted against: an access key, or without a (valid) key the client address."""

    identity: str
    described: str
    field: str


class RateLimits:
    """One process's limiter: its lifespan opens the shared counters, its middleware counts every /v1 request."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._quota = Quota(settings.rate_limit, settings.rate_limit_window) if settings.rate_limit else None
        self._clock = clock
        self._counters: Counters | None = None
        self._log = structlog.get_logger("parley.ratelimit")
        self._quiet_until = -math.inf
        self._unchecked = 0
        self._claims: dict[str, _Claim] = {}

    @asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        if self._quota is None:
            yield
            return
        if self._settings.is_postgres:
            counters: PostgresCounters | SQLiteCounters = PostgresCounters(self._settings.database_url, self._quota)
        else:
            counters = SQLiteCounters(counters_path(self._settings.database_url), self._quota)
        await counters.open()
        self._counters = counters
        try:
            yield
        finally:
            self._counters = None
            await counters.close()

    async def admit(self, scope: Scope, send: Send) -> list[tuple[bytes, bytes]] | None:
        """Count a /v1 request against its holder's quota: the RateLimit-* headers its answer carries, or None when
        it is over its quota and has been answered 429 here (through `send`)."""
        counters, quota = self._counters, self._quota
        if counters is None or quota is None or not scope["path"].startswith(LIMITED_PREFIX):
            return []
        holder = await _holder(scope)
        now = self._clock().timestamp()
        try:
            decision = await self._decide(counters, quota, holder.identity, now)
        except CountersUnavailableError as error:
            self._warn(error)
            return []
        headers = quota.headers(decision)
        if not decision.allowed:
            await _refuse(scope, send, holder, quota, decision, headers)
            return None
        return headers

    async def _decide(self, counters: Counters, quota: Quota, identity: str, now: float) -> Decision:
        """Spend one of this process's claimed requests, claiming more from the shared counters when none is left."""
        claim = self._claims.get(identity)
        if claim is None or claim.unspent <= 0 or now >= claim.until:
            claim = None
            if quota.batch > 1:
                tat, allowed = await counters.hit(identity, now, quota.batch)
                if allowed:
                    claim = _Claim(quota.batch, tat, now + _CLAIM_SECONDS)
            if claim is None:
                tat, allowed = await counters.hit(identity, now)
                if not allowed:
                    self._claims.pop(identity, None)
                    return quota.decision(tat, False, now)
                claim = _Claim(1, tat, now + _CLAIM_SECONDS)
            if len(self._claims) >= _CLAIMS_KEPT:
                self._claims = {k: c for k, c in self._claims.items() if c.unspent > 0 and now < c.until}
            self._claims[identity] = claim
        claim.unspent -= 1
        # the headers as if the requests still unspent here had not been claimed yet
        return quota.decision(claim.tat - claim.unspent * quota.interval, True, now)

    def _warn(self, error: CountersUnavailableError) -> None:
        """Fail open, and say so at most every ten seconds."""
        self._unchecked += 1
        if time.monotonic() >= self._quiet_until:
            self._quiet_until = time.monotonic() + _WARN_EVERY
            self._log.warning("rate_limit_unavailable", error=str(error), unchecked_requests=self._unchecked)
            self._unchecked = 0


async def _holder(scope: Scope) -> Holder:
    secret = _secret(scope)
    if secret:
        try:
            principal = await key_principal(scope["app"].state.key_store, secret, scope.setdefault("state", {}))  # type: ignore[typeddict-item]
        except StoreUnavailableError:
            principal = None  # the route answers 503 itself; count the request against its address meanwhile
        if principal is not None and principal.key_id is not None:
            scope.setdefault("state", {})["principal"] = principal  # type: ignore[typeddict-item]  # named in the request's log line even when refused here
            return Holder(principal.key_id, f"the key {principal.name!r} ({principal.key_id})", "Authorization")
    host = (scope.get("client") or ("unknown", 0))[0]
    return Holder(f"address:{host}", f"the client address {host}", "client address")


def _secret(scope: Scope) -> str | None:
    header = raw_header(scope, b"authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        return secret.strip() if scheme.lower() == "bearer" else None
    keys = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key")
    return keys[0] if keys else None


async def _refuse(
    scope: Scope, send: Send, holder: Holder, quota: Quota, decision: Decision, headers: list[tuple[bytes, bytes]]
) -> None:
    rule = f"at most {quota.limit} requests per {quota.window} s"
    problem = Problem(
        title="Too many requests",
        status=429,
        detail=f"{holder.described} is over its rate limit ({rule}); retry in {decision.retry_after} s",
        errors=[FieldError(holder.field, rule)],
        request_id=scope.get("state", {}).get("request_id"),
    )
    body = msgspec.json.encode(problem)
    start: Message = {
        "type": "http.response.start",
        "status": 429,
        "headers": [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode()), *headers],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
