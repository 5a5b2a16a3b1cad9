"""Negotiations, their event streams, the global feed, single events and their histories."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import itertools
from typing import Any

import msgspec

from events.application import Appended, ParleyLog, envelope
from events.describe import describe
from events.negotiation import Negotiation
from events.records import Recorded
from service.queries.params import Page, encode_cursor, peek
from service.queries.store import ReadStore


class NegotiationOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    parties: tuple[str, ...]
    description: str | None
    version: int
    event_count: int
    first_occurred_on: dt.date | None
    last_occurred_on: dt.date | None
    opened_by: str
    opened_at: dt.datetime
    last_recorded_at: dt.datetime | None
    position: int | None = None


class History(msgspec.Struct, frozen=True):
    event_id: str
    records: list[dict[str, Any]]


def negotiation_out(state: Negotiation, position: int | None = None) -> NegotiationOut:
    return NegotiationOut(
        id=state.negotiation_id,
        title=state.title,
        parties=state.parties,
        description=state.description,
        version=state.version,
        event_count=state.event_count,
        first_occurred_on=state.first_occurred_on,
        last_occurred_on=state.last_occurred_on,
        opened_by=state.opened_by,
        opened_at=state.opened_at,
        last_recorded_at=state.last_recorded_at,
        position=position,
    )


def stored(log: ParleyLog, negotiation_id: str, records: list[Recorded]) -> list[Appended]:
    """Records already decoded (a live state's), with where each is stored: its position and hash, in the order given."""
    placed = log.placed(negotiation_id, [r.originator_version for r in records])
    return [Appended(r, placed[r.originator_version].position, placed[r.originator_version].hash) for r in records]


def with_corrections(log: ParleyLog, items: list[Appended]) -> list[dict[str, Any]]:
    """Each event's envelope, naming the events that corrected or retracted it, with how to show it (`display`: title, summary, detail, lane, group)."""
    corrections = log.corrections([a.record.event_id for a in items])
    return [shown(a, corrections.get(a.record.event_id)) for a in items]


def shown(appended: Appended, corrections: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A stored event as the API returns it: its envelope and `display` (events/describe.py)."""
    return {**envelope(appended, corrections), "display": msgspec.to_builtins(describe(appended.record.event))}


def negotiations_page(store: ReadStore, after: int | None, limit: int) -> Page:
    found, _ = store.log.negotiations(after=after or 0, limit=limit + 1)
    listed, more = peek(found, limit, lambda pair: encode_cursor(pair[0]))
    return Page(items=[negotiation_out(state) for _, state in listed], next=more)


def all_negotiations(log: ParleyLog, page_size: int = 500) -> list[NegotiationOut]:
    """Every negotiation, read a page at a time."""
    found: list[NegotiationOut] = []
    after: int | None = 0
    while after is not None:
        page, after = log.negotiations(after=after, limit=page_size)
        found += [negotiation_out(state) for _, state in page]
    return found


def negotiation(store: ReadStore, negotiation_id: str) -> Negotiation:
    """NegotiationNotFoundError when there is none."""
    return store.log.negotiation(negotiation_id)


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Which of a stream's events a list keeps."""

    types: frozenset[str] | None = None
    topic: str | None = None
    occurred_from: dt.date | None = None
    occurred_to: dt.date | None = None

    def __call__(self, record: Recorded) -> bool:
        event = record.event
        return (
            (self.types is None or event.type in self.types)
            and (self.topic is None or self.topic in event.topics)
            and (self.occurred_from is None or event.occurred_on >= self.occurred_from)
            and (self.occurred_to is None or event.occurred_on <= self.occurred_to)
        )


def events_page(store: ReadStore, negotiation_id: str, keep: EventFilter, after_version: int, limit: int) -> Page:
    """A negotiation's events in stream order after a version, filtered, with their corrections."""
    # from the live state: its records were decoded (and checked) once, not at every read
    records = store.states.state(negotiation_id).records
    start = bisect.bisect_right(records, after_version, key=lambda r: r.originator_version)
    found = stored(store.log, negotiation_id, list(itertools.islice(filter(keep, records[start:]), limit + 1)))
    items, more = peek(found, limit, lambda appended: encode_cursor(appended.record.originator_version))
    return Page(items=with_corrections(store.log, items), next=more)


def feed_page(store: ReadStore, after: int, limit: int) -> Page:
    """The global log in position order after a position: the pull feed."""
    found, _ = store.log.feed(after=after, limit=limit + 1)
    items, more = peek(found, limit, lambda appended: encode_cursor(appended.position))
    return Page(items=with_corrections(store.log, items), next=more)


def event(store: ReadStore, event_id: str) -> dict[str, Any]:
    """One event with what corrected or retracted it; EventNotFoundError when there is none."""
    return with_corrections(store.log, [store.log.event(event_id.lower())])[0]


def history(store: ReadStore, event_id: str) -> History:
    """An event, then every correction and retraction of it."""
    return History(event_id=event_id.lower(), records=[shown(a) for a in store.log.history(event_id.lower())])
