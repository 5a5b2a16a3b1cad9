"""Recorded events (a client's event plus what the server set) and the mapper that stores them."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent

from events.errors import EventUnreadableError
from events.payloads import AnyEvent, SystemEvent

# Streams are keyed by UUID in the library's tables; a negotiation's slug maps to one.
_STREAMS = uuid.UUID("6d1f3b8e-5a0c-4f4e-9a57-2f4d7c1e0b9a")


@functools.lru_cache(maxsize=65536)
def stream_id(negotiation_id: str) -> uuid.UUID:
    return uuid.uuid5(_STREAMS, negotiation_id)


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """A domain event for the eventsourcing library: one event appended to a negotiation."""

    originator_id: uuid.UUID
    originator_version: int
    event_id: str
    negotiation_id: str
    recorded_at: dt.datetime
    recorded_by: str
    request_id: str
    event: AnyEvent | SystemEvent

    @property
    def version(self) -> int:
        return self.originator_version


class _StoredState(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    negotiation_id: str
    recorded_at: dt.datetime
    recorded_by: str
    request_id: str
    event: AnyEvent | SystemEvent


_encode_state = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(_StoredState).decode


class _Target(msgspec.Struct, frozen=True):
    target: str | None = None


class IndexFields(msgspec.Struct, frozen=True):
    """What the event index keeps of a stored state; everything else in it is skipped, not decoded."""

    event_id: str
    negotiation_id: str
    recorded_by: str
    recorded_at: str
    event: _Target

    @property
    def target(self) -> str | None:
        return self.event.target


index_fields = msgspec.json.Decoder(IndexFields).decode


class ParleyMapper(Mapper):
    """Stores events as msgspec JSON under their stable type tag, never a Python import path."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        record: Recorded = domain_event
        state = _StoredState(
            event_id=record.event_id,
            negotiation_id=record.negotiation_id,
            recorded_at=record.recorded_at,
            recorded_by=record.recorded_by,
            request_id=record.request_id,
            event=record.event,
        )
        return StoredEvent(
            originator_id=record.originator_id,
            originator_version=record.originator_version,
            topic=record.event.type,
            state=_encode_state(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Recorded:
        try:
            state = _decode_state(stored_event.state)
        except msgspec.ValidationError as error:
            negotiation = msgspec.json.decode(stored_event.state).get("negotiation_id", str(stored_event.originator_id))
            raise EventUnreadableError(negotiation, stored_event.originator_version, stored_event.topic, str(error)) from error
        originator_id = stored_event.originator_id
        return Recorded(
            originator_id=originator_id if isinstance(originator_id, uuid.UUID) else uuid.UUID(str(originator_id)),
            originator_version=stored_event.originator_version,
            event_id=state.event_id,
            negotiation_id=state.negotiation_id,
            recorded_at=state.recorded_at,
            recorded_by=state.recorded_by,
            request_id=state.request_id,
            event=state.event,
        )
