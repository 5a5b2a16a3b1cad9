"""Runners that follow the global log and keep persisted views current, tracking written with the rows.

A view's rows and its tracking position (eventsourcing's tracking table) are written in one
transaction, so a runner that dies resumes exactly where its last batch committed. PostgreSQL
is followed with the library's LISTEN/NOTIFY subscription, SQLite by polling its log. Of several
copies of a follower, the one holding its lease (projections/leases.py) follows; the others stand by.
"""

from __future__ import annotations

import datetime as dt
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog
from eventsourcing.persistence import (
    InfrastructureFactory,
    Notification,
    PersistenceError,
    Tracking,
)
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from events.application import ParleyLog, is_postgres_env
from events.records import Recorded
from events.store import SideTables
from projections.leases import Lease, open_lease, this_process
from projections.parking import (
    INFRASTRUCTURE_ERRORS,
    PARKED_TABLE,
    Parked,
    Parking,
    attempted,
    describe,
    fold_skipping_poison,
    is_poison,
    parked_events,
    refold,
    write_parked,
)
from projections.state import State, evolve
from projections.views import VIEWS, Row, ViewSpec

Progress = Callable[[int, int], None]


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class ViewTables(SideTables):
    """The view tables beside eventsourcing's tracking table; shared by both backends."""

    def _view_statements(self) -> list[str]:
        statements = []
        for spec in VIEWS.values():
            statements.append(spec.create_statement())
            statements.append(f"CREATE INDEX IF NOT EXISTS {spec.table}_next ON {spec.table} (next_change_on)")
        return [*statements, PARKED_TABLE]

    def replace(
        self, spec: ViewSpec, negotiation_ids: Iterable[str], rows: Sequence[Row], tracking: Tracking | None,
        parked: Sequence[Parked] = (), resolved: Iterable[int] = (),
    ) -> None:
        """Swap the rows of these negotiations, park events, unpark retried ones and advance the tracking, all at once."""
        ids = sorted(set(negotiation_ids))
        columns = list(spec.columns)
        insert = self._sql(f"INSERT INTO {spec.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
        with self._transaction(commit=True) as cursor:
            if ids:
                cursor.execute(
                    self._sql(f"DELETE FROM {spec.table} WHERE negotiation_id IN ({', '.join('?' * len(ids))})"), ids
                )
            if rows:
                cursor.executemany(insert, [tuple(row[c] for c in columns) for row in rows])
            write_parked(self, cursor, parked, [(spec.name, position) for position in resolved])
            if tracking is not None:
                self._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]

    def reset(self, spec: ViewSpec) -> None:
        with self._transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {spec.table}")
            cursor.execute(self._sql("DELETE FROM parley_parked WHERE follower = ?"), (spec.name,))
            cursor.execute(self._sql(f"DELETE FROM {self._tracking_table} WHERE application_name = ?"), (spec.tracking,))

    def rows(self, spec: ViewSpec, where: str = "", params: Sequence[Any] = (), order: str = "") -> list[Row]:
        statement = f"SELECT * FROM {spec.table}" + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else "")
        return self.run(statement, params)

    def stale(self, spec: ViewSpec, today: dt.date) -> set[str]:
        """Negotiations whose rows change today with no new event (a scheduled rate, a lapsing truce)."""
        found = self.rows(spec, "next_change_on IS NOT NULL AND next_change_on <= ?", (today.isoformat(),))
        return {row["negotiation_id"] for row in found}

    def position(self, spec: ViewSpec) -> int:
        return self.max_tracking_id(spec.tracking) or 0  # type: ignore[attr-defined]

    @property
    def _tracking_table(self) -> str:
        return getattr(self, "tracking_table_name", "tracking")


class SQLiteViewTables(ViewTables, SQLiteTrackingRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self._view_statements()]


class PostgresViewTables(ViewTables, PostgresTrackingRecorder):
    placeholder = "%s"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from psycopg.sql import SQL

        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(SQL(s) for s in self._view_statements())  # type: ignore[arg-type]


def open_view_tables(log: ParleyLog) -> ViewTables:
    """The views live in the event store's database, behind their own connection pool."""
    env = Environment("ParleyViews", dict(log.env))
    factory = InfrastructureFactory.construct(env)
    postgres = is_postgres_env(env)
    return factory.tracking_recorder(PostgresViewTables if postgres else SQLiteViewTables)  # type: ignore[return-value]


class Follower:
    """Follows the global log from a tracked position, in batches; subclasses say what a batch does.

    `apply(batch)` must write its effects and the tracking of the batch's last position in one
    transaction; `tick()` runs when the log is quiet (calendar-driven work). After any failure the
    follower starts again from the stored position, so nothing is skipped and nothing applied twice.
    """

    name = "follower"
    MISSED_WAKEUP_SECONDS = 5.0  # quiet this long while the log is ahead: a wake-up was missed

    def __init__(self, log: ParleyLog, *, batch_size: int = 500, refresh_seconds: float = 60.0) -> None:
        self.log = log
        self.batch_size = batch_size
        self.refresh_seconds = refresh_seconds
        self._states: dict[str, State] = {}
        self._stopping = threading.Event()
        self._leave = threading.Event()  # set when stopping, or when the lease is lost
        self._lease: Lease | None = None
        self.lease_poll = 1.0
        self._threads: list[threading.Thread] = []
        self._subscription: Any = None
        self._log = structlog.get_logger("parley.followers").bind(follower=self.name)

    def position(self) -> int:
        raise NotImplementedError

    def apply(self, notifications: Sequence[Notification]) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Work that depends on the calendar, not on new events."""

    def reset(self) -> None:
        raise NotImplementedError

    @functools.cached_property
    def parking(self) -> Parking:
        return Parking(self.name, self.tables)  # type: ignore[attr-defined]

    def fold_in(self, notifications: Sequence[Notification]) -> list[tuple[int, Recorded, State | None, State]]:
        """Each event with its position and its negotiation's state before and after it.

        An event that does not decode or fold is parked and left out of its negotiation's state.
        """
        for negotiation_id in self.parking.refresh():  # retried elsewhere: fold them in from the stream again
            self._states.pop(negotiation_id, None)
        folded = []
        for notification in notifications:
            record: Recorded | None = None
            try:
                record = self.log.mapper.to_domain_event(notification)  # type: ignore[assignment]
                before = self._state_before(record)
                after = evolve(before, record)
            except Exception as error:  # noqa: BLE001 - what this event does to the fold is the event's
                if not is_poison(error):
                    raise
                self.parking.park(notification.id, error, *((record.negotiation_id, record.event_id) if record else ()))
                continue
            self._states[record.negotiation_id] = after
            folded.append((notification.id, record, before if before.size else None, after))
        return folded

    def _state_before(self, record: Recorded) -> State:
        state = self._states.get(record.negotiation_id)
        if state is None or state.version >= record.originator_version:
            state = refold(self.log, record.negotiation_id, skip=self.parking.positions(), upto_version=record.originator_version - 1)
        return state

    def current_state(self, negotiation_id: str) -> State:
        state = refold(self.log, negotiation_id, skip=self.parking.positions())
        self._states[negotiation_id] = state
        return state

    # --- catching up in the foreground (rebuilds, tests) ----------------------------------

    def catch_up(self, progress: Progress | None = None) -> int:
        """Process everything after the position up to the head; return how many events."""
        done = 0
        position = self.position()
        head = self.log.head()
        while True:
            batch = self.log.recorder.select_notifications(
                start=position, limit=self.batch_size, inclusive_of_start=False
            )
            if not batch:
                return done
            self.apply(batch)
            position = batch[-1].id
            done += len(batch)
            if progress:
                progress(done, max(head - (position - done), done))

    def rebuild(self, progress: Progress | None = None) -> int:
        self.reset()
        self._states.clear()
        return self.catch_up(progress)

    # --- following in the background -----------------------------------------------------

    def start(self, *, lease_poll: float = 1.0) -> None:
        """Follow in the background while this process holds the lease named after the follower.

        Without the lease the follower stands by and tries again every `lease_poll` seconds; holding
        it, it checks as often that it still does, and leaves the log at a batch boundary if not.
        """
        self.lease_poll = lease_poll
        self._lease = self._lease or open_lease(self.log.env, self.name)
        thread = threading.Thread(target=self._supervise, name=f"follow-{self.name}", daemon=True)
        self._threads = [thread]
        thread.start()

    def _supervise(self) -> None:
        """Stand by until the lease is ours, follow while it stays ours, stand by again when it is not."""
        assert self._lease is not None
        waiting = False
        while not self._stopping.is_set():
            if not self._lease.acquire():
                if not waiting:
                    self._log.info("lease_waiting", holder=self._lease.holder(), poll=self.lease_poll)
                    waiting = True
                self._stopping.wait(self.lease_poll)
                continue
            waiting = False
            self._log.info("lease_acquired", holder=this_process())
            try:
                self._follow_while_leased()
            finally:
                self._lease.release()

    def _follow_while_leased(self) -> None:
        """Follow from the stored position; after any failure, start again from the stored position."""
        self._leave.clear()
        if self._stopping.is_set():  # stop() came between acquiring and here
            return
        watcher = threading.Thread(target=self._watch_lease, name=f"lease-{self.name}", daemon=True)
        watcher.start()
        try:
            while not self._leave.is_set():
                try:
                    self.tick()
                    self._follow_once()
                except (PersistenceError, OSError) as error:
                    # IntegrityError included: another runner moved the tracking; resume after it.
                    self._log.warning("follower_restarting", error=str(error))
                    self._leave.wait(1.0)
        finally:
            self._leave.set()
            watcher.join()

    def _watch_lease(self) -> None:
        assert self._lease is not None
        while not self._leave.wait(self.lease_poll):
            if not self._lease.held():
                self._log.warning("lease_lost", holder=this_process())
                self._leave.set()
                if self._subscription is not None:
                    self._subscription.stop()

    def _follow_once(self) -> None:
        received: queue.Queue[Notification | None] = queue.Queue(maxsize=self.batch_size * 4)
        subscription = self.log.recorder.subscribe(gt=self.position())
        self._subscription = subscription
        failure: list[BaseException] = []

        def follow() -> None:
            try:
                with subscription:
                    for notification in subscription:
                        received.put(notification)
            except (PersistenceError, OSError) as error:
                failure.append(error)
            finally:
                received.put(None)

        follower = threading.Thread(target=follow, name=f"follow-{self.name}-read", daemon=True)
        follower.start()
        ticked = heard = time.monotonic()
        try:
            while not self._leave.is_set():
                try:
                    first = received.get(timeout=min(self.lease_poll, self.refresh_seconds))
                except queue.Empty:
                    now = time.monotonic()
                    if now - ticked >= self.refresh_seconds:
                        self.tick()
                        ticked = now
                    if now - heard >= self.MISSED_WAKEUP_SECONDS and self.log.head() > (position := self.position()):
                        # The library's PostgreSQL subscription reads what is there, then LISTENs: an event
                        # committed in between sends it no wake-up. Long quiet, yet behind: begin again from here.
                        self._log.info("follower_resubscribing", position=position)
                        break
                    continue
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.batch_size:
                    try:
                        more = received.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        received.put(None)
                        break
                    batch.append(more)
                self.apply(batch)
                heard = time.monotonic()
        finally:
            subscription.stop()
            while follower.is_alive():  # let a reader blocked on a full queue finish
                try:
                    received.get_nowait()
                except queue.Empty:
                    follower.join(0.1)
        if failure:
            raise failure[0]

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the log after the batch in hand is committed, and give up the lease."""
        self._stopping.set()
        self._leave.set()
        if self._subscription is not None:
            self._subscription.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self._lease is not None:
            self._lease.release()


class ViewRunner(Follower):
    """Keeps one persisted view current from the global log."""

    def __init__(
        self,
        log: ParleyLog,
        tables: ViewTables,
        spec: ViewSpec,
        *,
        batch_size: int = 500,
        today: Callable[[], dt.date] = today_utc,
        refresh_seconds: float = 60.0,
    ) -> None:
        self.name = spec.name
        super().__init__(log, batch_size=batch_size, refresh_seconds=refresh_seconds)
        self.tables = tables
        self.spec = spec
        self.today = today

    def position(self) -> int:
        return self.tables.position(self.spec)

    def reset(self) -> None:
        self.tables.reset(self.spec)

    def apply(self, notifications: Sequence[Notification]) -> None:
        """Fold a batch into the states it touches and replace their rows, with the tracking; park poison events."""
        folded = self.fold_in(notifications)
        touched = {record.negotiation_id for _, record, _, _ in folded}
        today = self.today()
        rows = [row for nid in sorted(touched) for row in self._rows_parking_poison(nid, folded, today)]
        parked = self.parking.take()
        self.tables.replace(self.spec, touched, rows, Tracking(self.spec.tracking, notifications[-1].id), parked)
        for event in parked:
            self._log.error("event_parked", position=event.position, event_id=event.event_id,
                            negotiation_id=event.negotiation_id, error=event.error)
        self._log.debug("batch", events=len(notifications), position=notifications[-1].id, negotiations=len(touched))

    def _rows(self, state: State, today: dt.date) -> list[Row]:
        return self.spec.rows(state, today) if state.size else []

    def _rows_parking_poison(self, negotiation_id: str, folded: list[tuple[int, Recorded, State | None, State]], today: dt.date) -> list[Row]:
        try:
            return self._rows(self._states[negotiation_id], today)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - one of the batch's events breaks the view's code: find it, event by event
            pass
        mine = [(position, record, before) for position, record, before, _ in folded if record.negotiation_id == negotiation_id]
        state, rows = fold_skipping_poison(
            mine[0][2] or State(), [(position, record) for position, record, _ in mine], lambda s: self._rows(s, today),
            lambda position, error, record: self.parking.park(position, error, record.negotiation_id, record.event_id),
        )
        self._states[negotiation_id] = state
        return rows

    def retry_parked(self, positions: Sequence[int] = ()) -> list[Parked]:
        """Process parked events again (all, or those at `positions`): rebuild their negotiations' rows from the stream.

        Returns the events still parked, with their new error; the others are unparked in the same transaction as the rows.
        """
        wanted = parked_events(self.tables, self.name, positions)
        all_parked = {p.position for p in parked_events(self.tables, self.name)}
        today = self.today()
        failing: list[Parked] = []
        by_negotiation: dict[str | None, list[Parked]] = {}
        for event in wanted:
            by_negotiation.setdefault(event.negotiation_id, []).append(event)
        for negotiation_id, events in by_negotiation.items():
            if negotiation_id is None:
                failing += [attempted(e, "the event index has no negotiation for this position") for e in events]
                continue
            resolved: list[int] = []
            rows: list[Row] | None = None
            for event in events:
                skip = all_parked - set(resolved) - {event.position}
                try:
                    rows = self._rows(refold(self.log, negotiation_id, skip=skip), today)
                except Exception as error:  # noqa: BLE001 - the event's failure, kept with the park row
                    if not is_poison(error):
                        raise
                    failing.append(attempted(event, error))
                    continue
                resolved.append(event.position)
            if resolved:
                self.tables.replace(self.spec, [negotiation_id], rows or [], None, resolved=resolved)
                self._states.pop(negotiation_id, None)
                self.parking.forget(resolved)
        if failing:
            self.tables.replace(self.spec, [], [], None, failing)  # the new error and one more attempt
        return failing

    def tick(self) -> None:
        self.refresh()

    def refresh(self) -> int:
        """Recompute negotiations whose rows went stale with the calendar; tracking stays as it is."""
        stale = self.tables.stale(self.spec, self.today())
        for nid in sorted(stale):
            try:
                rows = self._rows(self.current_state(nid), self.today())
            except Exception as error:  # noqa: BLE001 - an event the runner has yet to reach and park; the next tick
                if not is_poison(error):
                    raise
                self._log.warning("refresh_skipped", negotiation_id=nid, error=describe(error))
                continue
            self.tables.replace(self.spec, [nid], rows, None)
        return len(stale)

    def wait(self, position: int, timeout: float) -> bool:
        """Block until the view includes `position`; False on timeout."""
        try:
            self.tables.wait(self.spec.tracking, position, timeout=timeout)  # type: ignore[attr-defined]
        except TimeoutError:
            return False
        return True


def open_runners(log: ParleyLog, tables: ViewTables, names: Iterable[str] | None = None, **options: Any) -> dict[str, ViewRunner]:
    return {name: ViewRunner(log, tables, VIEWS[name], **options) for name in (names or VIEWS)}
