"""The eventsourcing application that records negotiation events and reads them back."""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent

from events.audit import MAX_FINDINGS, ChainReport, orphan_findings, verify_chain
from events.datastores import RenewingSQLiteDatastore
from events.errors import (
    EventNotFoundError,
    EventRejectedError,
    IdempotencyKeyReusedError,
    NegotiationNotFoundError,
    VersionConflictError,
    store_unavailable,
)
from events.group_commit import Abandoned, GroupCommit, Pending
from events.negotiation import Negotiation, correction_targets, decide, fold
from events.payloads import AUDIT_STREAM, AnyEvent
from events.records import Recorded, stream_id
from events.store import Idempotency, ParleyTables, StoredRow

Clock = Callable[[], dt.datetime]
MAX_CONFLICT_RETRIES = 50


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sqlite_path(database_url: str) -> str:
    """What the SQLite store opens for a path or an sqlite:// URL (sqlite:////abs/path, sqlite:///rel/path)."""
    return database_url.removeprefix("sqlite:///").removeprefix("sqlite://")


def sqlite_file(database_url: str) -> str | None:
    """The file an SQLite store keeps its events in; None for PostgreSQL, an in-memory store or a file: URI."""
    if database_url.startswith(("postgresql://", "postgres://")):
        return None
    path = sqlite_path(database_url)
    return None if path in ("", ":memory:") or path.startswith("file:") else path


def store_env(database_url: str, *, pool_size: int = 2, max_overflow: int = 10, store_timeout: float = 5.0) -> dict[str, str]:
    """The eventsourcing environment for an SQLite path or a postgresql:// URL.

    On PostgreSQL every pool built from it (the log's, the views', the webhooks') keeps `pool_size`
    connections open and opens up to `max_overflow` more under load.
    """
    common = {"MAPPER_TOPIC": "events.records:ParleyMapper", "CREATE_TABLE": "y"}
    if database_url.startswith(("postgresql://", "postgres://")):
        url = urlsplit(database_url)
        return {
            **common,
            "PERSISTENCE_MODULE": "events.datastores:ParleyPostgresFactory",
            "APPLICATION_RECORDER_TOPIC": "events.store:ParleyPostgresRecorder",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(max_overflow),
            # also how long a statement waits for a pooled connection: a request answers 503 after it
            "POSTGRES_CONNECT_TIMEOUT": str(max(1, round(store_timeout))),
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_PRE_PING": "y",
        }
    path = sqlite_path(database_url)
    return {
        **common,
        "PERSISTENCE_MODULE": "events.datastores:ParleySQLiteFactory",
        "APPLICATION_RECORDER_TOPIC": "events.store:ParleySQLiteRecorder",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def is_postgres_env(env: Mapping[str, str]) -> bool:
    """Whether an eventsourcing environment made by `store_env` describes PostgreSQL."""
    return "postgres" in env.get("PERSISTENCE_MODULE", "").lower()


class Appended(msgspec.Struct, frozen=True):
    record: Recorded
    position: int
    hash: str


class Placed(msgspec.Struct, frozen=True):
    """Where a stored event sits in the log, and its chain hash."""

    position: int
    hash: str


class Appending(msgspec.Struct, frozen=True):
    """An idempotent request: who sent it, under which key, and a digest of what was sent."""

    principal: str
    key: str
    request_hash: str


class IdempotentReplay(Exception):
    """The request was already carried out; `appended` is what it appended then."""

    def __init__(self, appended: list[Appended]) -> None:
        super().__init__("replayed")
        self.appended = appended


def _landed(pending: Pending, landed: Negotiation | None, records: Sequence[Recorded]) -> tuple[list[Any], list[str]]:
    """The append's recordings once committed; if it failed, its event ids leave the stream's `types` again (a fold
    adds to that map in place, and the state it was decided on shares it)."""
    try:
        return pending.result()
    except BaseException:
        if landed is not None:
            for record in records:
                landed.types.pop(record.event_id, None)
        raise


class ParleyLog(Application):
    """Negotiation timelines as streams of immutable events, one stream per negotiation."""

    name = "Parley"

    def __init__(self, env: dict[str, str], clock: Clock = utcnow) -> None:
        super().__init__(env)
        self.clock = clock
        self._states: dict[str, Negotiation] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._group = GroupCommit(self.save)
        if isinstance(datastore := getattr(self.recorder, "datastore", None), RenewingSQLiteDatastore):
            datastore.writes_first = True  # on one SQLite file the appends' commits go before the followers' batches
        # negotiation -> (its state with the appends this process has in flight, the last of them)
        self._ahead: dict[str, tuple[Negotiation, Pending]] = {}
        # (negotiation, version) -> where it was stored: a committed event never moves, so once read it is kept
        self._placed: dict[tuple[str, int], Placed] = {}
        self.append_listeners: list[Callable[[int], None]] = []
        # told each commit's notifications (stream, version, position) before the writer returns: read caches
        self.commit_listeners: list[Callable[[list[Any]], None]] = []
        # told each committed append's records (negotiation, records) in commit order; must not raise
        self.recorded_listeners: list[Callable[[str, Sequence[Recorded]], None]] = []

    @property
    def store(self) -> ParleyTables:
        return self.recorder  # type: ignore[return-value]

    def _notify(self, recordings: list[Any]) -> None:
        """After every commit: tell the listeners (metrics) how many events it stored."""
        for listener in self.append_listeners:
            listener(len(recordings))
        if self.commit_listeners:
            notifications = [r.notification for r in recordings]
            for heard in self.commit_listeners:
                heard(notifications)

    # --- writing -----------------------------------------------------------------------

    def record(
        self,
        negotiation_id: str,
        events: Sequence[AnyEvent],
        *,
        principal: str,
        request_id: str,
        expected_version: int | None = None,
        appending: Appending | None = None,
        event_keys: Sequence[Appending] | None = None,
    ) -> list[Appended]:
        """Append events to one negotiation, all or nothing; return them with their positions.

        `appending` makes the request idempotent as a whole; `event_keys` (one per event) make each
        event idempotent on its own, as imports need: a key used before fails the whole batch.
        """
        if appending is not None:
            with _translated_store_errors():
                self._replay_if_seen(appending)
        self._check_sources(events)
        for _ in range(MAX_CONFLICT_RETRIES):
            with self._stream_lock(negotiation_id), _translated_store_errors():
                # Optimistic: start from the state with every append this process has in flight to the stream;
                # versions are contiguous per stream, so any write we have not seen makes the insert collide,
                # and then we catch up and try again.
                state, after = self._ahead_of(negotiation_id, settled=expected_version is not None)
                current = state.version if state else 0
                if expected_version is not None and expected_version != current:
                    state = self._refresh(negotiation_id)
                    current = state.version if state else 0
                    if expected_version != current:
                        raise VersionConflictError(negotiation_id, expected_version, current)
                located = self._foreign(state, events)
                if negotiation_id in located.values():
                    # a target in this very stream that the state has not seen: another process appended it
                    # since; once ours in flight have landed, catch up and decide again, rather than refuse it
                    self._ahead_of(negotiation_id, settled=True)
                    self._refresh(negotiation_id)
                    continue
                decide(state, negotiation_id, events, located=located)
                now = self.clock()
                records = [
                    Recorded(
                        originator_id=stream_id(negotiation_id),
                        originator_version=current + offset,
                        event_id=str(uuid.uuid4()),
                        negotiation_id=negotiation_id,
                        recorded_at=now,
                        recorded_by=principal,
                        request_id=request_id,
                        event=event,
                    )
                    for offset, event in enumerate(events, start=1)
                ]
                idempotency = [
                    Idempotency(
                        principal=key.principal,
                        key=key.key,
                        request_hash=key.request_hash,
                        negotiation_id=negotiation_id,
                        event_ids=ids,
                        created_at=now.isoformat(),
                    )
                    for key, ids in self._keyed(appending, event_keys, records)
                ]
                landed = fold(records, state)
                pending = self._group.submit(
                    records, idempotency, after=after, on_commit=functools.partial(self._committed, negotiation_id, landed, records),
                )
                if landed is not None:
                    self._ahead[negotiation_id] = (landed, pending)
            # The commit is waited for outside the stream's lock: the next append to the stream is decided on this
            # one meanwhile, and they may share a commit.
            with _translated_store_errors():
                try:
                    recordings, hashes = _landed(pending, landed, records)
                except Abandoned:
                    continue  # the append it was decided on failed: decide again
                except IntegrityError:
                    # Another writer took this version, or a twin request took this key.
                    if appending is not None:
                        self._replay_if_seen(appending)
                    if event_keys and self.store.seen_keys(event_keys[0].principal, [k.key for k in event_keys]):
                        raise IdempotencyKeyReusedError(event_keys[0].key) from None
                    with self._stream_lock(negotiation_id):
                        self._ahead_of(negotiation_id, settled=True)
                        state = self._refresh(negotiation_id)
                    if (state.version if state else 0) <= current:
                        raise  # nobody else wrote: not a version race, a real constraint failure
                    if expected_version is not None:
                        raise VersionConflictError(
                            negotiation_id, expected_version, state.version if state else 0
                        ) from None
                    continue
            positions = [r.notification.id for r in recordings]
            self._placed.update(
                ((negotiation_id, r.originator_version), Placed(p, h)) for r, p, h in zip(records, positions, hashes, strict=True)
            )
            return [Appended(*row) for row in zip(records, positions, hashes, strict=True)]
        raise VersionConflictError(negotiation_id, -1, -1)  # pragma: no cover - contention beyond reason

    def _check_sources(self, events: Sequence[AnyEvent]) -> None:
        """A source that names a registry id must be registered; inline sources need no id."""
        named: dict[str, str] = {}
        for index, event in enumerate(events):
            prefix = f"events[{index}]." if len(events) > 1 else ""
            for path, payload in ((prefix, event), (f"{prefix}replacement.", getattr(event, "replacement", None))):
                source = getattr(payload, "source", None)
                if source is not None and source.id is not None:
                    named.setdefault(source.id, f"{path}source.id")
        if not named:
            return
        marks = ", ".join("?" * len(named))
        known = {row["id"] for row in self.run(f"SELECT id FROM parley_sources WHERE id IN ({marks})", tuple(named))}
        for source_id, field in named.items():
            if source_id not in known:
                raise EventRejectedError(
                    field, f"no registered source {source_id!r}: register it with POST /v1/sources, or send the source inline without an id"
                )

    @staticmethod
    def _keyed(
        appending: Appending | None, event_keys: Sequence[Appending] | None, records: Sequence[Recorded]
    ) -> list[tuple[Appending, list[str]]]:
        keyed = [(appending, [r.event_id for r in records])] if appending else []
        if event_keys is not None:
            keyed += [(key, [record.event_id]) for key, record in zip(event_keys, records, strict=True)]
        return keyed

    def seen_keys(self, principal: str, keys: Sequence[str]) -> set[str]:
        with _translated_store_errors():
            return self.store.seen_keys(principal, keys)

    def _replay_if_seen(self, appending: Appending) -> None:
        seen = self.store.idempotency(appending.principal, appending.key)
        if seen is None:
            return
        if seen.request_hash != appending.request_hash:
            raise IdempotencyKeyReusedError(appending.key)
        raise IdempotentReplay([self._appended(row) for row in self.store.select_events_by_id(seen.event_ids)])

    def _foreign(self, state: Negotiation | None, events: Sequence[AnyEvent]) -> dict[str, str]:
        """Where correction targets that are not in this stream live, for a precise error."""
        located: dict[str, str] = {}
        for target in correction_targets(events):
            if state is not None and target in state.types:
                continue
            rows = self.store.select_events_by_id([target])
            if rows:
                located[target] = self._decode(rows[0]).negotiation_id
        return located

    @contextmanager
    def _stream_lock(self, negotiation_id: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(negotiation_id, threading.Lock())
        with lock:
            yield

    def _ahead_of(self, negotiation_id: str, *, settled: bool) -> tuple[Negotiation | None, Pending | None]:
        """(The stream's state with this process's appends in flight, the last of them or None); under its lock.

        `settled`: wait for those in flight to land or fail first, so the state is the committed one.
        """
        ahead = self._ahead.get(negotiation_id)
        if ahead is not None:
            landed, pending = ahead
            if settled:
                pending.done.exception()  # waits; a failure is its own writer's to handle
            if not pending.done.done():
                return landed, pending
            del self._ahead[negotiation_id]
        return self._states.get(negotiation_id) or self._refresh(negotiation_id), None

    def _committed(self, negotiation_id: str, landed: Negotiation | None, records: Sequence[Recorded]) -> None:
        """Once an append has committed (in the writer's thread, in commit order): keep the state it was decided on,
        and hand its records to the read side (`recorded_listeners`), which may fold them without reading them back."""
        if landed is not None:
            self._keep(negotiation_id, landed)
        for listener in self.recorded_listeners:
            listener(negotiation_id, records)

    def _keep(self, negotiation_id: str, state: Negotiation) -> None:
        """The committed state, unless a newer one is already kept (commits and catch-ups can finish in any order)."""
        kept = self._states.get(negotiation_id)
        if kept is None or kept.version < state.version:
            self._states[negotiation_id] = state

    def record_system(
        self,
        events: Sequence[Any],
        *,
        principal: str,
        request_id: str,
        at: dt.datetime | None = None,
        side_statements: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> list[Appended]:
        """Append Parley's own audit events (key created, key revoked) to the audit stream.

        `side_statements` change a side table in the same transaction (the key row the event
        records), so the table never holds what no event says; `at` is their common time.
        An IntegrityError that is not a lost version race (a side row's constraint) is raised.
        """
        originator = stream_id(AUDIT_STREAM)
        with self._stream_lock(AUDIT_STREAM), _translated_store_errors():
            for _ in range(MAX_CONFLICT_RETRIES):
                last = list(self.events.get(originator, desc=True, limit=1))
                current = last[0].originator_version if last else 0
                now = at or self.clock()
                records = [
                    Recorded(originator_id=originator, originator_version=current + offset, event_id=str(uuid.uuid4()),
                             negotiation_id=AUDIT_STREAM, recorded_at=now, recorded_by=principal, request_id=request_id, event=event)
                    for offset, event in enumerate(events, start=1)
                ]
                hashes: list[str] = []
                try:
                    recordings = self.save(*records, hashes=hashes, side_statements=side_statements)
                except IntegrityError:
                    newest = list(self.events.get(originator, desc=True, limit=1))
                    if (newest[0].originator_version if newest else 0) == current:
                        raise
                    continue
                return [Appended(*row) for row in zip(records, [r.notification.id for r in recordings], hashes, strict=True)]
        raise VersionConflictError(AUDIT_STREAM, -1, -1)  # pragma: no cover - contention beyond reason

    def _refresh(self, negotiation_id: str) -> Negotiation | None:
        if negotiation_id.startswith("_"):
            return None  # system streams are not negotiations
        cached = self._states.get(negotiation_id)
        newer = self.events.get(stream_id(negotiation_id), gt=cached.version if cached else None)
        state = fold(newer, cached)  # type: ignore[arg-type]
        if state is not None:
            self._keep(negotiation_id, state)
        return self._states.get(negotiation_id)

    # --- reading -----------------------------------------------------------------------

    def negotiation(self, negotiation_id: str) -> Negotiation:
        with self._stream_lock(negotiation_id), _translated_store_errors():
            state = self._refresh(negotiation_id)
        if state is None:
            raise NegotiationNotFoundError(negotiation_id)
        return state

    def negotiations(self, *, after: int, limit: int) -> tuple[list[tuple[int, Negotiation]], int | None]:
        with _translated_store_errors():
            rows = self.store.select_feed(after=after, limit=limit, topics=("negotiation_opened",))
        found = [(row.position, self.negotiation(self._decode(row).negotiation_id)) for row in rows]
        return found, (rows[-1].position if len(rows) == limit else None)

    def recorded_after(self, negotiation_id: str, version: int | None, limit: int | None = None) -> list[Recorded]:
        """The negotiation's records after `version` (all of them for None), in version order; at most `limit`."""
        with _translated_store_errors():
            return list(self.events.get(stream_id(negotiation_id), gt=version, limit=limit))  # type: ignore[arg-type]

    def placed(self, negotiation_id: str, versions: Iterable[int]) -> dict[int, Placed]:
        """Where these stored versions of the stream are in the log; each is read from the store once, then remembered."""
        wanted = set(versions)
        missing = sorted(v for v in wanted if (negotiation_id, v) not in self._placed)
        if missing:
            with _translated_store_errors():
                rows = self.store.select_stream(
                    stream_id(negotiation_id), after_version=missing[0] - 1, limit=missing[-1] - missing[0] + 1
                )
            self._remember(negotiation_id, rows)
        return {v: found for v in wanted if (found := self._placed.get((negotiation_id, v))) is not None}

    def _remember(self, negotiation_id: str, rows: Iterable[StoredRow]) -> None:
        self._placed.update(((negotiation_id, row.version), Placed(row.position, row.hash)) for row in rows)

    def stream(
        self,
        negotiation_id: str,
        *,
        after_version: int,
        limit: int,
        match: Callable[[Recorded], bool] | None = None,
    ) -> tuple[list[Appended], int | None]:
        """A page of one stream in version order, filtered by `match`; the cursor is a version."""
        state = self.negotiation(negotiation_id)
        items: list[Appended] = []
        cursor = after_version
        batch = max(limit, 200)
        with _translated_store_errors():
            while len(items) < limit and cursor < state.version:
                rows = self.store.select_stream(stream_id(negotiation_id), after_version=cursor, limit=batch)
                if not rows:
                    break
                self._remember(negotiation_id, rows)
                for row in rows:
                    cursor = row.version
                    appended = self._appended(row)
                    if match is None or match(appended.record):
                        items.append(appended)
                        if len(items) == limit:
                            break
        more = cursor < state.version
        return items, (cursor if more else None)

    def feed(self, *, after: int, limit: int) -> tuple[list[Appended], int | None]:
        with _translated_store_errors():
            rows = self.store.select_feed(after=after, limit=limit)
        items = [self._appended(row) for row in rows]
        return items, (items[-1].position if len(items) == limit else None)

    def event(self, event_id: str) -> Appended:
        with _translated_store_errors():
            rows = self.store.select_events_by_id([event_id])
        if not rows:
            raise EventNotFoundError(event_id)
        return self._appended(rows[0])

    def corrections(self, event_ids: Sequence[str]) -> dict[str, dict[str, list[str]]]:
        """For each event id, the ids of the events that corrected or retracted it."""
        found: dict[str, dict[str, list[str]]] = {}
        with _translated_store_errors():
            rows = self.store.corrections_of(event_ids)
        for row in rows:
            kind = "corrected_by" if row["topic"] == "event_corrected" else "retracted_by"
            found.setdefault(row["target_id"], {}).setdefault(kind, []).append(row["event_id"])
        return found

    def verify(self, *, stop_at: int | None = None, batch: int = 2000) -> tuple[ChainReport, str | None]:
        """Recompute the hash chain over the whole log and check every index row against its event.

        Also the hash recomputed from the first event up to `stop_at` (None if no event is there).
        """

        def rows() -> Iterator[dict[str, Any]]:
            after = 0
            while page := self.store.select_chain(after=after, limit=batch):
                yield from page
                after = int(page[-1]["position"])

        with _translated_store_errors():
            report, at_stop = verify_chain(rows(), stop_at=stop_at, events_table=self.store.events_table_name)  # type: ignore[attr-defined]
            report.add(*orphan_findings(self.store.select_orphan_index_rows(limit=MAX_FINDINGS)))
        return report, at_stop

    def history(self, event_id: str) -> list[Appended]:
        """The event, then every correction and retraction of it, in the order they were recorded."""
        original = self.event(event_id)
        with _translated_store_errors():
            ids = [row["event_id"] for row in self.store.corrections_of([event_id])]
            revisions = self.store.select_events_by_id(ids)
        return [original, *(self._appended(row) for row in revisions)]

    def head(self) -> int:
        with _translated_store_errors():
            return self.store.head()

    def ping(self) -> None:
        self.run("SELECT 1 AS one")

    def run(self, statement: str, params: Sequence[Any] = (), *, commit: bool = False) -> list[dict[str, Any]]:
        """A statement on Parley's side tables, with store outages reported as StoreUnavailableError."""
        with _translated_store_errors():
            return self.store.run(statement, params, commit=commit)

    @staticmethod
    def _stored(row: StoredRow) -> StoredEvent:
        return StoredEvent(
            originator_id=row.originator_id, originator_version=row.version, topic=row.topic, state=row.state
        )

    def _decode(self, row: StoredRow) -> Recorded:
        return self.mapper.to_domain_event(self._stored(row))  # type: ignore[return-value]

    def _appended(self, row: StoredRow) -> Appended:
        return Appended(self._decode(row), row.position, row.hash)


@contextmanager
def _translated_store_errors() -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except (PersistenceError, OSError, sqlite3.Error, psycopg.Error) as error:
        raise store_unavailable(error) from error


def envelope(appended: Appended, corrections: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The JSON shape of a stored event: what the client sent plus the server-set fields."""
    record = appended.record
    body: dict[str, Any] = msgspec.to_builtins(record.event)
    body.update(
        event_id=record.event_id,
        negotiation_id=record.negotiation_id,
        version=record.originator_version,
        position=appended.position,
        recorded_at=record.recorded_at.isoformat().replace("+00:00", "Z"),
        recorded_by=record.recorded_by,
        request_id=record.request_id,
        hash=appended.hash,
    )
    if corrections:
        body.update(corrections)
    return body


