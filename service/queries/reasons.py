"""The events behind an answer's `because` lists, each readable at once: its date, type, one line and source (`?expand=because`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import msgspec

from events.describe import Description, describe
from events.errors import InvalidQueryError
from projections import State
from service.queries.sources import SourceOut, SourceRegistry, sources_behind

# What `expand` may name; one today, a comma list so a later expansion adds a word, not a parameter.
EXPANSIONS: tuple[str, ...] = ("because",)
NOT_EXPANDED = frozenset[str]()


class BecauseEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event named in a `because`, as a reader needs it to answer "why?" without another call."""

    event_id: str
    occurred_on: dt.date
    type: str
    # how every reader shows the event (events/describe.py): `summary` is its one line
    display: Description
    # the source it was recorded with, graded as in `sources` (null: it names none)
    source: SourceOut | None = None
    recorded_by: str | None = None
    recorded_at: dt.datetime | None = None


def expansions(value: str | None) -> frozenset[str]:
    """`expand=` as a set of names (a comma list); InvalidQueryError naming `expand` for a name there is not."""
    if value is None:
        return NOT_EXPANDED
    names = [name.strip() for name in value.split(",")]
    unknown = [name for name in names if name not in EXPANSIONS]
    if unknown:
        message = f"must be a comma list of {', '.join(EXPANSIONS)}"
        raise InvalidQueryError("expand", message, f"expand: {message}, not {unknown[0]!r}")
    return frozenset(names)


def because_events(
    state: State, ids: Iterable[str], registry: SourceRegistry, sources: dict[str, SourceOut | None] | None = None,
) -> dict[str, BecauseEvent]:
    """These event ids (those of an answer's `because` lists: `because_ids`), each once in their order, as BecauseEvents.

    `sources` are the graded sources already found for these ids (state answers have them); else they are looked up.
    """
    wanted = dict.fromkeys(ids)
    found = {i: recorded for i in wanted if (recorded := state.recorded(i)) is not None}
    missing = [i for i in wanted if i not in (sources or {})]
    graded = {**(sources or {}), **(sources_behind(state.recorded, missing, registry) if missing else {})}
    return {
        event_id: BecauseEvent(
            event_id=event_id,
            occurred_on=recorded.event.occurred_on,
            type=recorded.event.type,
            display=describe(recorded.event),
            source=graded.get(event_id),
            recorded_by=recorded.recorded_by,
            recorded_at=recorded.recorded_at,
        )
        for event_id in wanted
        if (recorded := found.get(event_id)) is not None
    }
