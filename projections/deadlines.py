"""The `deadlines` read model, and the due dates (as extended on a given day) other models depend on."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from msgspec import Struct

from events.payloads import DeadlineExtended, DeadlineResolved, DeadlineSet
from projections import registry
from projections.index import Sorted, Version, sort_key
from projections.state import Fact, Scope, View, because_of, memo, scope


@dataclasses.dataclass(eq=False)
class DeadlineIndex:
    set: Sorted = dataclasses.field(default_factory=Sorted)
    extended: Sorted = dataclasses.field(default_factory=Sorted)
    resolved: Sorted = dataclasses.field(default_factory=Sorted)

    def file(self, version: Version) -> None:
        event = version.fact.event
        facet = {DeadlineSet: self.set, DeadlineExtended: self.extended}.get(type(event), self.resolved)
        facet.add(sort_key(event.occurred_on, version.fact.version), version)


class Extension(Struct, frozen=True, kw_only=True):
    due_on: dt.date
    event_id: str
    occurred_on: dt.date


Ends = Literal["start_of_day", "end_of_day"]
_DAY = dt.timedelta(days=1)


class DeadlineView(Struct, frozen=True, kw_only=True):
    deadline_id: str
    title: str | None
    due_on: dt.date
    # start_of_day: due_on is the first day after the deadline; end_of_day: its last day within
    ends: Ends
    # the first day after the deadline: what it suspends lapses, what it holds off applies
    lapses_on: dt.date
    original_due_on: dt.date | None
    # days from as_of to due_on while the deadline runs
    days_remaining: int | None
    consequence: str | None
    extensions: tuple[Extension, ...]
    resolved_on: dt.date | None
    outcome: str | None
    because: tuple[str, ...]


class DeadlinesView(Struct, frozen=True, kw_only=True):
    upcoming: tuple[DeadlineView, ...]
    # due date gone by, or resolved before it came
    passed: tuple[DeadlineView, ...]


class Due(Struct, frozen=True, kw_only=True):
    on: dt.date
    because: tuple[str, ...]
    ends: Ends = "end_of_day"
    consequence: str | None = None

    @property
    def last_day(self) -> dt.date:
        """The last day within the deadline: what runs until it still applies on this day."""
        return self.on - _DAY if self.ends == "start_of_day" else self.on

    @property
    def lapses_on(self) -> dt.date:
        return self.last_day + _DAY


@dataclasses.dataclass(frozen=True)
class DeadlineBook:
    """The deadlines known in a view; due dates depend on the day asked about."""

    scope: Scope
    _chains: dict[tuple[str, dt.date], list[Fact[DeadlineExtended]]] = dataclasses.field(default_factory=dict)
    _dues: dict[tuple[str, dt.date], Due | None] = dataclasses.field(default_factory=dict)
    _found: dict[tuple[str, str], Fact | None] = dataclasses.field(default_factory=dict)

    def _index(self, deadline_id: str) -> DeadlineIndex | None:
        return self.scope.entities.of("deadlines").get(deadline_id)

    def ids(self) -> list[str]:
        """The deadlines set or extended by as_of."""
        return [
            deadline_id
            for deadline_id, index in list(self.scope.entities.of("deadlines").items())
            if self.origin(deadline_id) is not None or self.scope.latest(index.extended) is not None
        ]

    def origin(self, deadline_id: str) -> Fact[DeadlineSet] | None:
        """The deadline as set last (in world order) by as_of."""
        key = ("set", deadline_id)
        if key not in self._found:
            index = self._index(deadline_id)
            self._found[key] = self.scope.latest(index.set) if index is not None else None
        return self._found[key]

    def resolution(self, deadline_id: str) -> Fact[DeadlineResolved] | None:
        key = ("resolved", deadline_id)
        if key not in self._found:
            index = self._index(deadline_id)
            self._found[key] = self.scope.latest(index.resolved) if index is not None else None
        return self._found[key]

    def chain(self, deadline_id: str, on: dt.date) -> list[Fact[DeadlineExtended]]:
        """The extensions that occurred on or before `on` (and by as_of), in world order."""
        on = min(on, self.scope.as_of)
        found = self._chains.get((deadline_id, on))
        if found is None:
            index = self._index(deadline_id)
            found = self._chains[(deadline_id, on)] = self.scope.world_order(index.extended if index else None, on)
        return found

    def due(self, deadline_id: str, on: dt.date) -> Due | None:
        """The due date as extended by what occurred on or before `on`; None for an unknown deadline."""
        on = min(on, self.scope.as_of)
        key = (deadline_id, on)
        if key not in self._dues:
            self._dues[key] = self._due(deadline_id, on)
        return self._dues[key]

    def _due(self, deadline_id: str, on: dt.date) -> Due | None:
        chain = self.chain(deadline_id, on)
        origin = self.origin(deadline_id)
        return due_of(origin, chain)


def due_of(origin: Fact[DeadlineSet] | None, chain: list[Fact[DeadlineExtended]]) -> Due | None:
    """The due date the last extension set (or the deadline itself), how that date ends it, and its consequence."""
    if chain:
        due_on = chain[-1].event.due_on
    elif origin is not None:
        due_on = origin.event.due_on
    else:
        return None
    latest_first = [f.event for f in reversed(chain)] + ([origin.event] if origin else [])
    return Due(
        on=due_on,
        because=because_of(origin.because if origin else (), *(f.because for f in chain)),
        ends=next((e.ends for e in latest_first if e.ends), "end_of_day"),
        consequence=next((e.consequence for e in latest_first if e.consequence), None),
    )


def deadline_book(view: View) -> DeadlineBook:
    return memo(view, "deadline_book", lambda: DeadlineBook(scope=scope(view)))


def deadlines(view: View) -> DeadlinesView:
    book = deadline_book(view)
    upcoming: list[DeadlineView] = []
    passed: list[DeadlineView] = []
    for deadline_id in book.ids():
        due = book.due(deadline_id, view.as_of)
        if due is None:
            continue
        origin = book.origin(deadline_id)
        resolution = book.resolution(deadline_id)
        is_upcoming = resolution is None and due.lapses_on > view.as_of
        (upcoming if is_upcoming else passed).append(
            DeadlineView(
                deadline_id=deadline_id,
                title=origin.event.title if origin else None,
                due_on=due.on,
                ends=due.ends,
                lapses_on=due.lapses_on,
                original_due_on=origin.event.due_on if origin else None,
                days_remaining=(due.on - view.as_of).days if is_upcoming else None,
                consequence=due.consequence,
                extensions=extensions(book, deadline_id, view.as_of),
                resolved_on=resolution.occurred_on if resolution else None,
                outcome=resolution.event.outcome if resolution else None,
                because=because_of(due.because, resolution.because if resolution else ()),
            )
        )
    upcoming.sort(key=lambda d: (d.due_on, d.deadline_id))
    passed.sort(key=lambda d: (d.due_on, d.deadline_id), reverse=True)
    return DeadlinesView(upcoming=tuple(upcoming), passed=tuple(passed))


def extensions(book: DeadlineBook, deadline_id: str, on: dt.date) -> tuple[Extension, ...]:
    return tuple(
        Extension(due_on=f.event.due_on, event_id=f.event_id, occurred_on=f.occurred_on)
        for f in book.chain(deadline_id, on)
    )


registry.register(registry.ReadModel(
    name="deadlines",
    folds=(DeadlineSet, DeadlineExtended, DeadlineResolved),
    answer=lambda view, _: deadlines(view),
    answer_type=DeadlinesView,
    entity=lambda event: event.deadline_id,
    index=DeadlineIndex,
    file=DeadlineIndex.file,
    id_field="deadline_id",
    listed=lambda part: [{**d, "passed": False} for d in part["upcoming"]] + [{**d, "passed": True} for d in part["passed"]],
    items=lambda part: (*part.upcoming, *part.passed),
    order=40,
))
