"""Persisted views of current state across negotiations: their tables and the rows a state gives them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec

from projections.coverage import coverage
from projections.deadlines import deadlines
from projections.measures import measures
from projections.state import State, view
from projections.tariffs import tariff_schedule

Row = dict[str, Any]
_FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def deadline_rows(state: State, today: dt.date) -> list[Row]:
    seen = view(state, today, _FAR_FUTURE)
    answer = deadlines(seen)
    record_through = coverage(seen).record_through
    return [
        {
            "negotiation_id": state.negotiation_id,
            "deadline_id": d.deadline_id,
            "title": d.title,
            "due_on": d.due_on.isoformat(),
            "ends": d.ends,
            "lapses_on": d.lapses_on.isoformat(),
            "original_due_on": _iso(d.original_due_on),
            "consequence": d.consequence,
            "extensions": len(d.extensions),
            "resolved_on": _iso(d.resolved_on),
            "outcome": d.outcome,
            "record_through": _iso(record_through),
            "because": _json(d.because),
            "next_change_on": None,
        }
        for d in (*answer.upcoming, *answer.passed)
    ]


def _measure_row(state: State, measure_id: str, kind: str, imposed_by: str, applies_to: str, **values: Any) -> Row:
    return {"negotiation_id": state.negotiation_id, "measure_id": measure_id, "kind": kind, "imposed_by": imposed_by,
            "applies_to": applies_to, **values}


def measure_rows(state: State, today: dt.date) -> list[Row]:
    """Every measure with where it stands today; `next_change_on` says when a row goes stale with no new event."""
    as_known = view(state, today, _FAR_FUTURE)
    rows: list[Row] = []
    for m in measures(as_known).measures:
        upcoming = [p.effective_from for p in m.pending] + ([m.until + dt.timedelta(days=1)] if m.until else [])
        rows.append(
            _measure_row(
                state, m.measure_id, m.kind, m.imposed_by, m.applies_to,
                legal_basis=m.legal_basis, status=m.status, in_force=int(m.in_force), rate_pct=m.rate_pct,
                since=_iso(m.since), until_on=_iso(m.until), next_change_on=_iso(min(upcoming, default=None)),
                because=_json(m.because),
            )
        )
    for direction in tariff_schedule(as_known).directions:
        lapse = [direction.on_truce_lapse.applies_from] if direction.on_truce_lapse else []
        pending: dict[str, list[dt.date]] = {}
        for p in direction.pending:
            pending.setdefault(p.measure_id, []).append(p.effective_from)
        for rate in direction.measures:
            ends = [rate.until + dt.timedelta(days=1)] if rate.until else []
            rows.append(
                _measure_row(
                    state, rate.measure_id, "tariff", direction.imposed_by, direction.applies_to,
                    legal_basis=rate.legal_basis, status=rate.status, in_force=1, rate_pct=rate.rate_pct,
                    since=rate.since.isoformat(), until_on=_iso(rate.until),
                    next_change_on=_iso(min([*pending.get(rate.measure_id, []), *lapse, *ends], default=None)),
                    because=_json(rate.because),
                )
            )
        for line in direction.not_in_force:
            rows.append(
                _measure_row(
                    state, line.measure_id, "tariff", direction.imposed_by, direction.applies_to,
                    legal_basis=line.legal_basis, status=line.status, in_force=0, rate_pct=line.rate_pct,
                    since=_iso(line.since), until_on=None,
                    next_change_on=_iso(min(pending.get(line.measure_id, []), default=None)),
                    because=_json(line.because),
                )
            )
    return rows


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """One persisted view: its name, version, columns (name -> SQL type), key and how a state fills it.

    A new version (new columns, or rows that mean something else) is a new table with its own tracking, so it is
    rebuilt from the log while a process of the previous release still reads the old one.
    """

    name: str
    version: int
    columns: dict[str, str]
    key: tuple[str, ...]
    rows: Callable[[State, dt.date], list[Row]]

    @property
    def tracking(self) -> str:
        return self.name if self.version == 1 else f"{self.name}_v{self.version}"

    @property
    def table(self) -> str:
        return f"parley_view_{self.tracking}"

    def create_statement(self) -> str:
        columns = ", ".join(f"{name} {kind}" for name, kind in self.columns.items())
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({columns}, PRIMARY KEY ({', '.join(self.key)}))"


DEADLINES = ViewSpec(
    name="deadlines",
    version=2,
    columns={
        "negotiation_id": "TEXT NOT NULL",
        "deadline_id": "TEXT NOT NULL",
        "title": "TEXT",
        "due_on": "TEXT NOT NULL",
        "ends": "TEXT NOT NULL",
        "lapses_on": "TEXT NOT NULL",
        "original_due_on": "TEXT",
        "consequence": "TEXT",
        "extensions": "INTEGER NOT NULL",
        "resolved_on": "TEXT",
        "outcome": "TEXT",
        "record_through": "TEXT",
        "because": "TEXT NOT NULL",
        "next_change_on": "TEXT",
    },
    key=("negotiation_id", "deadline_id"),
    rows=deadline_rows,
)

MEASURES = ViewSpec(
    name="measures",
    version=2,
    columns={
        "negotiation_id": "TEXT NOT NULL",
        "measure_id": "TEXT NOT NULL",
        "kind": "TEXT NOT NULL",
        "imposed_by": "TEXT NOT NULL",
        "applies_to": "TEXT NOT NULL",
        "legal_basis": "TEXT",
        "status": "TEXT",
        "in_force": "INTEGER NOT NULL",
        "rate_pct": "DOUBLE PRECISION",
        "since": "TEXT",
        "until_on": "TEXT",
        "next_change_on": "TEXT",
        "because": "TEXT NOT NULL",
    },
    key=("negotiation_id", "measure_id", "imposed_by", "applies_to"),
    rows=measure_rows,
)

VIEWS: dict[str, ViewSpec] = {spec.name: spec for spec in (DEADLINES, MEASURES)}
