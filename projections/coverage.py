"""The `coverage` read model: through which date a negotiation's record is kept complete, and whether as_of is past it."""

from __future__ import annotations

import datetime as dt

from msgspec import Struct

from events.payloads import CoverageDeclared
from projections import registry
from projections.state import Fact, View, memo, scope


class CoverageView(Struct, frozen=True, kw_only=True):
    # the last day the record is kept complete for: declared by a curator, else the last occurred_on of its events
    # (the opening aside; None: nothing recorded yet)
    record_through: dt.date | None
    declared: bool
    # as_of is after record_through: what the answer states past that day is not backed by the record
    beyond_record: bool
    because: tuple[str, ...]


def coverage(view: View, on: dt.date | None = None) -> CoverageView:
    """Coverage as known at the view's known_at (whatever its as_of); `beyond_record` is judged for `on` (default as_of)."""
    through, declared, because = memo(view, "coverage", lambda: _record_through(view))
    day = on or view.as_of
    return CoverageView(
        record_through=through,
        declared=declared,
        beyond_record=through is not None and day > through,
        because=because,
    )


def _record_through(view: View) -> tuple[dt.date | None, bool, tuple[str, ...]]:
    seen = scope(view)
    declaration: Fact[CoverageDeclared] | None = seen.latest_known(seen.entities.coverage)
    if declaration is not None:
        return declaration.event.record_through, True, declaration.because
    last = seen.entities.dated.at(seen.cut)
    if last is None:
        return None, False, ()
    return last.occurred_on, False, last.because


registry.register(registry.ReadModel(name="coverage", folds=(CoverageDeclared,)))  # beside every answer, not a part
