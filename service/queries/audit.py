"""Audit: who recorded what, what a key did, and the log's head signed as a checkpoint."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec

from events.application import Appended, ParleyLog
from events.audit import Checkpoint
from events.errors import InvalidQueryError, KeyNotFoundError, PrincipalNotFoundError
from events.payloads import AUDIT_STREAM
from service.auth import KeyStore
from service.queries.negotiations import shown
from service.queries.params import Page, encode_cursor, peek
from service.queries.store import ReadStore
from service.signing import Signer

SCAN_PAGE = 1000


class Recorded(msgspec.Struct, frozen=True):
    negotiation_id: str
    events: int
    first_recorded_at: str
    last_recorded_at: str


class PrincipalAudit(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    key: Any
    events_recorded: int
    negotiations: list[Recorded]
    key_events: list[dict[str, Any]]


def checkpoint(log: ParleyLog, signer: Signer) -> Checkpoint:
    """The log's head (position, hash, when it was recorded), signed."""
    head = log.head()
    if head == 0:
        return signer.checkpoint(0, "0" * 64, "")
    appended = log.feed(after=head - 1, limit=1)[0][0]
    recorded_at = appended.record.recorded_at.isoformat().replace("+00:00", "Z")
    return signer.checkpoint(appended.position, appended.hash, recorded_at)


def principal_audit(log: ParleyLog, keys: KeyStore, name: str) -> PrincipalAudit:
    """What a key recorded, by negotiation, and its key's creation and revocation; PrincipalNotFoundError when nothing is known."""
    rows = log.run(
        "SELECT negotiation_id, COUNT(*) AS n, MIN(recorded_at) AS first_at, MAX(recorded_at) AS last_at "
        "FROM parley_event_index WHERE recorded_by = ? AND negotiation_id <> ? GROUP BY negotiation_id ORDER BY negotiation_id",
        (name, AUDIT_STREAM),
    )
    audit_ids = [r["event_id"] for r in log.run(
        "SELECT event_id FROM parley_event_index WHERE negotiation_id = ? ORDER BY position", (AUDIT_STREAM,))]
    key_events = [shown(a) for a in (log.event(i) for i in audit_ids) if getattr(a.record.event, "name", None) == name]
    try:
        key = keys.get(name)
    except KeyNotFoundError:
        key = None
    if key is None and not rows and not key_events:
        raise PrincipalNotFoundError(name)
    return PrincipalAudit(
        name=name, key=key, events_recorded=sum(int(r["n"]) for r in rows),
        negotiations=[Recorded(r["negotiation_id"], int(r["n"]), r["first_at"], r["last_at"]) for r in rows],
        key_events=key_events,
    )


def utc(value: dt.datetime | None, field: str) -> dt.datetime | None:
    """A recording-time bound; InvalidQueryError without an offset (its moment would be ambiguous)."""
    if value is not None and value.tzinfo is None:
        raise InvalidQueryError(field, "needs an offset or Z", f"{field} needs a time zone offset or Z")
    return value


@dataclasses.dataclass(frozen=True)
class AuditFilter:
    recorded_by: str | None = None
    source: str | None = None
    negotiation: str | None = None
    recorded_from: dt.datetime | None = None
    recorded_to: dt.datetime | None = None

    def __call__(self, item: Appended) -> bool:
        record = item.record
        stated = record.event.source
        wanted = self.source.lower() if self.source else None
        return (
            (self.recorded_by is None or record.recorded_by == self.recorded_by)
            and (self.negotiation is None or record.negotiation_id == self.negotiation)
            and (self.recorded_from is None or record.recorded_at >= self.recorded_from)
            and (self.recorded_to is None or record.recorded_at <= self.recorded_to)
            and (wanted is None or (stated is not None and wanted in {stated.name.lower(), (stated.id or "").lower()}))
        )


def audit_events_page(store: ReadStore, keep: AuditFilter, after: int, limit: int) -> Page:
    """Who recorded what, in position order after `after`: the log scanned a page at a time until a page is found."""
    found: list[Appended] = []
    while len(found) <= limit:
        page, more = store.log.feed(after=after, limit=SCAN_PAGE)
        for item in page:
            after = item.position
            if keep(item):
                found.append(item)
                if len(found) > limit:
                    break
        if more is None:
            break
    items, following = peek(found, limit, lambda appended: encode_cursor(appended.position))
    return Page(items=[shown(item) for item in items], next=following)
