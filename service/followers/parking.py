"""Poison events: an event a follower cannot process is parked, and the follower goes on past it.

A poison event fails the same way every time it is processed: this version cannot decode it (a
newer version stored it), or folding it, computing a view's rows or deriving its webhook messages
raises. Retrying the batch would stop the follower for good, so the event is parked — a row in
`parley_parked`, written in the same transaction as the batch's output and tracking — and left out
of the negotiation's state, so the rows stay those of the negotiation without it. A store that
cannot be reached is not poison: those errors still fail the batch, which is tried again.
`parley projections retry` processes parked events again once their cause is fixed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import psycopg
from eventsourcing.persistence import (
    ConnectionPoolClosedError,
    PersistenceError,
    StoredEvent,
)

from events.application import ParleyLog
from events.errors import StoreUnavailableError
from events.records import Recorded, stream_id
from projections.state import State, evolve

# Errors of the store, not of an event: the batch fails and is tried again, nothing is parked.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    PersistenceError, OSError, sqlite3.Error, psycopg.Error, StoreUnavailableError, ConnectionPoolClosedError,
)

PARKED_TABLE = """CREATE TABLE IF NOT EXISTS parley_parked (
    follower TEXT NOT NULL,
    position BIGINT NOT NULL,
    event_id TEXT,
    negotiation_id TEXT,
    error TEXT NOT NULL,
    parked_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (follower, position))"""

_COLUMNS = "follower, position, event_id, negotiation_id, error, parked_at, attempts"
_UPSERT = (
    f"INSERT INTO parley_parked ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (follower, position) DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at, "
    "attempts = parley_parked.attempts + 1"
)

T = TypeVar("T")


class Parked(msgspec.Struct, frozen=True, kw_only=True):
    follower: str
    position: int
    event_id: str | None
    negotiation_id: str | None
    error: str
    parked_at: str
    attempts: int


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def attempted(event: Parked, error: BaseException | str) -> Parked:
    """A parked event tried once more, with the error it failed with this time."""
    return msgspec.structs.replace(event, error=error if isinstance(error, str) else describe(error), attempts=event.attempts + 1)


def is_poison(error: BaseException) -> bool:
    return isinstance(error, Exception) and not isinstance(error, INFRASTRUCTURE_ERRORS)


def write_parked(tables: Any, cursor: Any, parked: Sequence[Parked], resolved: Iterable[tuple[str, int]] = ()) -> None:
    """In the caller's transaction: park these events, and drop the park rows of events now processed."""
    if parked:
        cursor.executemany(tables._sql(_UPSERT), [
            (p.follower, p.position, p.event_id, p.negotiation_id, p.error, p.parked_at, p.attempts) for p in parked
        ])
    for follower, position in resolved:
        cursor.execute(tables._sql("DELETE FROM parley_parked WHERE follower = ? AND position = ?"), (follower, position))


def parked_events(tables: Any, follower: str | None = None, positions: Sequence[int] = ()) -> list[Parked]:
    where, params = [], []
    if follower is not None:
        where.append("follower = ?")
        params.append(follower)
    if positions:
        where.append(f"position IN ({', '.join('?' * len(positions))})")
        params.extend(positions)
    statement = f"SELECT {_COLUMNS} FROM parley_parked" + (f" WHERE {' AND '.join(where)}" if where else "")
    return [Parked(**row) for row in tables.run(statement + " ORDER BY follower, position", params)]


class Parking:
    """One follower's parked events: those written already, and those parked in the batch being applied."""

    def __init__(self, follower: str, tables: Any, clock: Callable[[], dt.datetime]) -> None:
        self.follower = follower
        self.tables = tables
        self._clock = clock
        self._written: dict[int, str | None] = {}  # position -> negotiation_id
        self._pending: list[Parked] = []

    def positions(self) -> set[int]:
        return set(self._written) | {p.position for p in self._pending}

    def refresh(self) -> set[str]:
        """Reload the parked events; the negotiations of those retried meanwhile (by `parley projections retry`)."""
        current = {p.position: p.negotiation_id for p in parked_events(self.tables, self.follower)}
        retried = {nid for position, nid in self._written.items() if position not in current and nid is not None}
        self._written = current
        return retried

    def park(self, position: int, error: BaseException, negotiation_id: str | None = None, event_id: str | None = None) -> None:
        if negotiation_id is None or event_id is None:  # it did not decode: the event index still knows it
            found = self.tables.run("SELECT event_id, negotiation_id FROM parley_event_index WHERE position = ?", (position,))
            if found:
                event_id, negotiation_id = found[0]["event_id"], found[0]["negotiation_id"]
        self._pending.append(Parked(
            follower=self.follower, position=position, event_id=event_id, negotiation_id=negotiation_id,
            error=describe(error), parked_at=self._clock().astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), attempts=1,
        ))

    def take(self) -> list[Parked]:
        """The events parked in this batch, to write with it; they count as written from now on."""
        taken, self._pending = self._pending, []
        self._written.update({p.position: p.negotiation_id for p in taken})
        return taken

    def forget(self, positions: Iterable[int]) -> None:
        for position in positions:
            self._written.pop(position, None)


def refold(log: ParleyLog, negotiation_id: str, *, skip: set[int], upto_version: int | None = None) -> State:
    """A negotiation's state from its stream, leaving out the events at the positions in `skip`."""
    state = State()
    after = 0
    while rows := log.store.select_stream(stream_id(negotiation_id), after_version=after, limit=1000):
        for row in rows:
            if upto_version is not None and row.version > upto_version:
                return state
            after = row.version
            if row.position not in skip:
                state = evolve(state, decode(log, row))
    return state


def decode(log: ParleyLog, row: Any) -> Recorded:
    stored = StoredEvent(originator_id=row.originator_id, originator_version=row.version, topic=row.topic, state=row.state)
    return log.mapper.to_domain_event(stored)  # type: ignore[return-value]


def fold_skipping_poison(
    before: State, events: Sequence[tuple[int, Recorded]], derive: Callable[[State], T], park: Callable[[int, BaseException, Recorded], None]
) -> tuple[State, T]:
    """Fold events one at a time from `before`, parking each one after which `derive` fails; the state without them and what it derives.

    The slow path, taken only for a negotiation whose batch failed as a whole.
    """
    state, derived = before, derive(before)
    for position, record in events:
        candidate = evolve(state, record)
        try:
            derived = derive(candidate)
        except Exception as error:  # noqa: BLE001 - any failure of the view's code on this event is the event's
            if not is_poison(error):
                raise
            park(position, error, record)
            continue
        state = candidate
    return state, derived
