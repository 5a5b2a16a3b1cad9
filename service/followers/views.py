"""Runners that keep persisted views current from the global log, tracking written with the rows.

A view's rows and its tracking position (eventsourcing's tracking table) are written in one
transaction, so a runner that dies resumes exactly where its last batch committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventsourcing.persistence import (
    InfrastructureFactory,
    Notification,
    Tracking,
)
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from events.application import ParleyLog, is_postgres_env
from events.records import Recorded
from events.store import SideTables
from service.followers.follower import Follower
from service.followers.parking import (
    INFRASTRUCTURE_ERRORS,
    PARKED_TABLE,
    Parked,
    attempted,
    describe,
    fold_skipping_poison,
    is_poison,
    parked_events,
    refold,
    write_parked,
)
from projections.state import State
from service.followers.tables import VIEWS, Row, ViewSpec



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
        parked: Sequence[Parked] = (), resolved: Iterable[int] = (), deleted: Sequence[tuple[Any, ...]] = (),
    ) -> None:
        """Swap the rows of these negotiations (and delete the rows keyed `deleted`, then insert `rows`), park
        events, unpark retried ones and advance the tracking, all at once."""
        ids = sorted(set(negotiation_ids))
        columns = list(spec.columns)
        insert = self._sql(f"INSERT INTO {spec.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
        with self._transaction(commit=True) as cursor:
            if ids:
                cursor.execute(
                    self._sql(f"DELETE FROM {spec.table} WHERE negotiation_id IN ({', '.join('?' * len(ids))})"), ids
                )
            if deleted:
                where = " AND ".join(f"{column} = ?" for column in spec.key)
                cursor.executemany(self._sql(f"DELETE FROM {spec.table} WHERE {where}"), list(deleted))
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


class ViewRunner(Follower):
    """Keeps one persisted view current from the global log."""

    def __init__(
        self,
        log: ParleyLog,
        tables: ViewTables,
        spec: ViewSpec,
        *,
        batch_size: int = 500,
        today: Callable[[], dt.date] | None = None,
        refresh_seconds: float = 60.0,
    ) -> None:
        self.name = spec.name
        super().__init__(log, batch_size=batch_size, refresh_seconds=refresh_seconds)
        self.tables = tables
        self.spec = spec
        # The rows this runner last wrote per negotiation, by key, so that a batch writes only the rows that changed.
        # Only while it holds the lease (nobody else writes the view then); forgotten when it follows again.
        self._written: dict[str, dict[tuple[Any, ...], Row]] = {}
        # the calendar day by the log's clock (UTC), unless a test gives its own
        self.today = today or (lambda: log.clock().astimezone(dt.UTC).date())

    def position(self) -> int:
        return self.tables.position(self.spec)

    def reset(self) -> None:
        self._written.clear()
        self.tables.reset(self.spec)

    def _follow_while_leased(self) -> None:
        self._written.clear()  # another process may have written the view since
        super()._follow_while_leased()

    def catch_up(self, progress: Any = None) -> int:
        self._written.clear()
        return super().catch_up(progress)

    def apply(self, notifications: Sequence[Notification]) -> None:
        """Fold a batch into the states it touches and write their rows that changed, with the tracking; park poison events."""
        folded = self.fold_in(notifications)
        touched = {record.negotiation_id for _, record, _, _ in folded}
        today = self.today()
        fresh = {nid: self._rows_parking_poison(nid, folded, today) for nid in sorted(touched)}
        parked = self.parking.take()
        replaced, rows, deleted, written = [], [], [], {}
        for nid, new_rows in fresh.items():
            new = {self._key(row): row for row in new_rows}
            written[nid] = new
            old = self._written.pop(nid, None)
            if old is None:  # not written by this runner yet: every row of the negotiation
                replaced.append(nid)
                rows += new_rows
                continue
            deleted += [key for key, row in old.items() if new.get(key) != row]
            rows += [row for key, row in new.items() if old.get(key) != row]
        self.tables.replace(
            self.spec, replaced, rows, Tracking(self.spec.tracking, notifications[-1].id), parked, deleted=deleted
        )
        self._written.update(written)  # only once committed: after a failure these negotiations are written whole
        for event in parked:
            self._log.error("event_parked", position=event.position, event_id=event.event_id,
                            negotiation_id=event.negotiation_id, error=event.error)
        self._log.debug("batch", events=len(notifications), position=notifications[-1].id, negotiations=len(touched))

    def _key(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[column] for column in self.spec.key)

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
                self._written.pop(negotiation_id, None)
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
            self._written.pop(nid, None)
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
