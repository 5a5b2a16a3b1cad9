"""Persisted views of current state across negotiations: their tables and the rows a state gives them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec

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
    answer = deadlines(view(state, today, _FAR_FUTURE))
    return [
        {
            "negotiation_id": state.negotiation_id,
            "deadline_id": d.deadline_id,
            "title": d.title,
            "due_on": d.due_on.isoformat(),
            "original_due_on": _iso(d.original_due_on),
            "consequence": d.consequence,
            "extensions": len(d.extensions),
            "resolved_on": _iso(d.resolved_on),
            "outcome": d.outcome,
            "because": _json(d.because),
            "next_change_on": None,
        }
        for d in (*answer.upcoming, *answer.passed)
    ]


def measure_rows(state: State, today: dt.date) -> list[Row]:
    """Every measure with what applies today; `next_change_on` says when a row goes stale with no new event."""
    as_known = view(state, today, _FAR_FUTURE)
    rows: list[Row] = []
    for m in measures(as_known).measures:
        upcoming = [p.effective_from for p in m.pending] + ([m.until + dt.timedelta(days=1)] if m.until else [])
        rows.append(
            {
                "negotiation_id": state.negotiation_id,
                "measure_id": m.measure_id,
                "kind": m.kind,
                "imposed_by": m.imposed_by,
                "applies_to": m.applies_to,
                "legal_basis": m.legal_basis,
                "status": m.status,
                "in_force": int(m.in_force),
                "rate_pct": m.rate_pct,
                "since": _iso(m.since),
                "until_on": _iso(m.until),
                "next_change_on": _iso(min(upcoming, default=None)),
                "because": _json(m.because),
            }
        )
    for direction in tariff_schedule(as_known).directions:
        lapse = [direction.on_truce_lapse.applies_from] if direction.on_truce_lapse else []
        pending: dict[str, list[dt.date]] = {}
        for p in direction.pending:
            pending.setdefault(p.measure_id, []).append(p.effective_from)
        for rate in direction.measures:
            rows.append(
                {
                    "negotiation_id": state.negotiation_id,
                    "measure_id": rate.measure_id,
                    "kind": "tariff",
                    "imposed_by": direction.imposed_by,
                    "applies_to": direction.applies_to,
                    "legal_basis": rate.legal_basis,
                    "status": "in_force",
                    "in_force": 1,
                    "rate_pct": rate.rate_pct,
                    "since": rate.since.isoformat(),
                    "until_on": None,
                    "next_change_on": _iso(min([*pending.pop(rate.measure_id, []), *lapse], default=None)),
                    "because": _json(rate.because),
                }
            )
        for p in direction.pending:
            if p.measure_id in pending:  # scheduled, not yet in force
                rows.append(
                    {
                        "negotiation_id": state.negotiation_id,
                        "measure_id": p.measure_id,
                        "kind": "tariff",
                        "imposed_by": direction.imposed_by,
                        "applies_to": direction.applies_to,
                        "legal_basis": None,
                        "status": "announced",
                        "in_force": 0,
                        "rate_pct": p.rate_pct,
                        "since": None,
                        "until_on": None,
                        "next_change_on": p.effective_from.isoformat(),
                        "because": _json(p.because),
                    }
                )
                pending.pop(p.measure_id)
    return rows


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """One persisted view: its name, table, columns (name -> SQL type), key and how a state fills it."""

    name: str
    table: str
    columns: dict[str, str]
    key: tuple[str, ...]
    rows: Callable[[State, dt.date], list[Row]]

    def create_statement(self) -> str:
        columns = ", ".join(f"{name} {kind}" for name, kind in self.columns.items())
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({columns}, PRIMARY KEY ({', '.join(self.key)}))"


DEADLINES = ViewSpec(
    name="deadlines",
    table="parley_view_deadlines",
    columns={
        "negotiation_id": "TEXT NOT NULL",
        "deadline_id": "TEXT NOT NULL",
        "title": "TEXT",
        "due_on": "TEXT NOT NULL",
        "original_due_on": "TEXT",
        "consequence": "TEXT",
        "extensions": "INTEGER NOT NULL",
        "resolved_on": "TEXT",
        "outcome": "TEXT",
        "because": "TEXT NOT NULL",
        "next_change_on": "TEXT",
    },
    key=("negotiation_id", "deadline_id"),
    rows=deadline_rows,
)

MEASURES = ViewSpec(
    name="measures",
    table="parley_view_measures",
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
