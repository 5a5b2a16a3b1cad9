"""The stores queries read: a PostgreSQL read replica when one is configured, the primary otherwise.

The rule: a query reads the replica, unless it names a `min_position` the replica has not
reached yet (its log head; for a persisted view, that view's tracking position on the replica),
and then the primary answers at once. Something the replica has not got yet (a negotiation,
an event or a source it does not know) is asked of the primary before a 404. Writes,
idempotency, keys, webhooks and the audit chain never come here: they use the primary log.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import structlog
from eventsourcing.persistence import PersistenceError

from events.application import Clock, ParleyLog, store_env
from events.errors import (
    EventNotFoundError,
    NegotiationNotFoundError,
    PositionNotRecordedError,
    SourceNotFoundError,
    StoreUnavailableError,
)
from service.queries.live import LiveStates
from service.followers.views import ViewTables, open_view_tables
from service.followers.tables import ViewSpec
from service.settings import Settings

T = TypeVar("T")
Side = Literal["primary", "replica"]
RETRY_OPEN_SECONDS = 1.0
# What the replica may not have yet: asked of the primary before the answer is "not found".
MISSING = (NegotiationNotFoundError, EventNotFoundError, SourceNotFoundError)


class ReplicaWriteError(RuntimeError):
    """Something tried to write through the read replica: a bug, never a client's fault."""


class ReplicaLog(ParleyLog):
    """A ParleyLog over a read replica: it reads, creates no tables and refuses every write."""

    name = "Parley"  # the same tables as the primary's (the library names them after the application)

    def __init__(self, settings: Settings, *, clock: Clock) -> None:
        env = store_env(
            settings.read_database_url, pool_size=settings.pool_size, max_overflow=settings.pool_max_overflow,
            store_timeout=settings.store_timeout,
        )
        try:
            super().__init__({**env, "CREATE_TABLE": "n"}, clock=clock)
        except (PersistenceError, OSError):
            # the recorder connects while it is built; do not leave its pool retrying behind us
            if hasattr(self, "factory"):
                self.factory.close()
            raise

    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise ReplicaWriteError("the read replica's log does not write")

    def record(self, *args: Any, **kwargs: Any) -> Any:
        raise ReplicaWriteError("the read replica's log does not write")

    def run(self, statement: str, params: Sequence[Any] = (), *, commit: bool = False) -> list[dict[str, Any]]:
        if commit:
            raise ReplicaWriteError("the read replica's log does not write")
        return super().run(statement, params)


@dataclasses.dataclass(frozen=True)
class ReadStore:
    """One database queries can read: its log, the live states folded from it, its view tables."""

    side: Side
    log: ParleyLog
    states: LiveStates
    # None where no persisted view is read (the CLI folds what it asks)
    tables: ViewTables | None = None

    @classmethod
    def over(cls, log: ParleyLog) -> ReadStore:
        """A store over one log with its own live states, for readers outside the API (the CLI, tests)."""
        return cls("primary", log, LiveStates(log))

    def close(self) -> None:
        if self.tables is not None:
            self.tables.datastore.close()  # type: ignore[attr-defined]
        self.log.close()


def open_replica(settings: Settings, clock: Clock) -> ReadStore:
    log = ReplicaLog(settings, clock=clock)
    try:
        return ReadStore("replica", log, LiveStates(log), open_view_tables(log))
    except (PersistenceError, OSError):
        log.close()
        raise


class ReadSides:
    """The primary and, when configured, its read replica; picks the store a request reads.

    The replica is opened on first use, so an API whose replica is down starts and writes; its
    replica reads answer 503 until the replica can be reached (tried again at most once a second).
    """

    def __init__(self, primary: ReadStore, open_replica: Callable[[], ReadStore] | None = None) -> None:
        self.primary = primary
        self._open_replica = open_replica
        self._replica: ReadStore | None = None
        self._failed_at = -float("inf")
        self._failure = ""
        self._guard = threading.Lock()

    @property
    def has_replica(self) -> bool:
        return self._open_replica is not None

    def replica(self) -> ReadStore:
        """The replica's store; StoreUnavailableError while it cannot be opened."""
        assert self._open_replica is not None, "no read replica is configured"
        with self._guard:
            if self._replica is not None:
                return self._replica
            if time.monotonic() - self._failed_at < RETRY_OPEN_SECONDS:
                raise StoreUnavailableError(f"the read replica cannot be reached: {self._failure}")
            try:
                self._replica = self._open_replica()
            except (PersistenceError, OSError) as error:
                self._failed_at, self._failure = time.monotonic(), str(error)
                raise StoreUnavailableError(f"the read replica cannot be reached: {error}") from error
            return self._replica

    def for_position(self, min_position: int | None) -> ReadStore:
        """The replica, unless the request needs a position the replica has not reached."""
        if not self.has_replica:
            return self.primary
        replica = self.replica()
        if min_position is None or replica.log.head() >= min_position:
            return replica
        return self.primary

    def for_view(self, spec: ViewSpec, min_position: int | None) -> ReadStore | None:
        """The replica when its copy of the view includes `min_position`; None: the primary's runner must answer."""
        if not self.has_replica:
            return None
        replica = self.replica()
        if min_position is None or (replica.tables is not None and replica.tables.position(spec) >= min_position):
            return replica
        return None

    def close(self) -> None:
        with self._guard:
            if self._replica is not None:
                self._replica.close()
                self._replica = None


def open_read_sides(settings: Settings, primary: ReadStore, clock: Clock) -> ReadSides:
    """The read sides for these settings; the replica (PARLEY_READ_DATABASE_URL) is tried at once and logged."""
    if not settings.read_database_url:
        return ReadSides(primary)
    sides = ReadSides(primary, lambda: open_replica(settings, clock))
    logger = structlog.get_logger("parley.reads")
    try:
        logger.info("read_replica", head=sides.replica().log.head(), primary_head=primary.log.head())
    except StoreUnavailableError as error:
        # Not fatal: writes do not need it, and its reads answer 503 until it is back.
        logger.warning("read_replica_unavailable", error=str(error))
    return sides


def answer(
    sides: ReadSides, min_position: int | None, work: Callable[..., T], *args: Any,
    mark: Callable[[Side], None] = lambda _: None, **kwargs: Any,
) -> T:
    """`work(store, *args, **kwargs)` on the store a query reads; what the replica does not have yet is asked of the primary.

    `mark` hears which side answers (the HTTP layer reports it in a header).
    """
    mark("replica" if sides.has_replica else "primary")  # what failed, if picking fails
    store = sides.for_position(min_position) if sides.has_replica else sides.primary
    if min_position is not None and store is sides.primary:
        head = store.log.head()
        if min_position > head:
            raise PositionNotRecordedError(min_position, head)
    mark(store.side)
    try:
        return work(store, *args, **kwargs)
    except MISSING:
        if store is sides.primary:
            raise
    mark("primary")
    return work(sides.primary, *args, **kwargs)


def view_store(sides: ReadSides, spec: ViewSpec, min_position: int | None, mark: Callable[[Side], None] = lambda _: None) -> ReadStore | None:
    """The replica when its copy of this view can answer; None: ask the primary's runner."""
    mark("replica" if sides.has_replica else "primary")
    store = sides.for_view(spec, min_position) if sides.has_replica else None
    mark(store.side if store is not None else "primary")
    return store
