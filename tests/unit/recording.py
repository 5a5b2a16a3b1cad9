"""Building recorded events in tests the way the server records them, without a store."""

from __future__ import annotations

import datetime as dt
import uuid

from events.payloads import Event
from events.records import Recorded, stream_id


class Stream:
    """Appends payloads the way the server does: increasing versions, fresh ids, a clock a minute apart."""

    def __init__(self, negotiation_id: str, start: dt.datetime, recorded_by: str = "editor@parley.test") -> None:
        self.negotiation_id = negotiation_id
        self.records: list[Recorded] = []
        self.clock = start
        self.recorded_by = recorded_by

    def add(self, event: Event, *, at: dt.datetime | None = None) -> str:
        self.clock = at or self.clock + dt.timedelta(minutes=1)
        recorded = Recorded(
            originator_id=stream_id(self.negotiation_id),
            originator_version=len(self.records) + 1,
            event_id=str(uuid.uuid4()),
            negotiation_id=self.negotiation_id,
            recorded_at=self.clock,
            recorded_by=self.recorded_by,
            request_id=str(uuid.uuid4()),
            event=event,
        )
        self.records.append(recorded)
        return recorded.event_id
