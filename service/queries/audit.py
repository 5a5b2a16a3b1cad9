"""Audit: who recorded what, what a key did, the log's head signed as a checkpoint, and `verify`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec

from events.application import Appended, ParleyLog
from events.audit import ChainReport, Checkpoint, Finding
from events.errors import EventUnreadableError, InvalidQueryError, KeyNotFoundError, LogDamagedError, PrincipalNotFoundError
from events.payloads import AUDIT_STREAM, KeyCreated, KeyRevoked
from events.records import Recorded as RecordedEvent
from service.auth import KeyAtRest, KeyStore, stamp
from service.queries.negotiations import shown
from service.queries.params import Page, encode_cursor, peek
from service.queries.store import ReadStore
from service.signing import Signer, signature_valid

SCAN_PAGE = 1000
KEYS_TABLE = "parley_keys"


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
    found = log.feed(after=head - 1, limit=1)[0]
    if not found or found[0].position != head:
        raise LogDamagedError(head)  # signing another position would pin a head that is not the log's
    appended = found[0]
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


def verify_log(log: ParleyLog, keys: KeyStore, signer: Signer, kept: Checkpoint | None = None) -> ChainReport:
    """Everything an audit answer relies on: the chain, the index against the hashed events, the keys
    table against the key events, and, given a checkpoint someone kept, that the log still extends it."""
    report, at_checkpoint = log.verify(stop_at=kept.position if kept else None)
    report.keys_checked, findings = key_findings(log, keys)
    report.add(*findings)
    if kept is not None:
        report.checkpoint_position = kept.position
        report.add(*checkpoint_findings(report, kept, at_checkpoint, signer, log.store.events_table_name))  # type: ignore[attr-defined]
    return report


def checkpoint_findings(report: ChainReport, kept: Checkpoint, at_checkpoint: str | None, signer: Signer, table: str) -> list[Finding]:
    """Whether the log as it is now extends the checkpoint: its signature, then the hash recomputed up to its position."""
    if not signature_valid(kept, signer.public_key_b64):
        other = f" (it names key {kept.key_id}; this server signs with {signer.key_id})" if kept.key_id != signer.key_id else ""
        return [Finding(table="checkpoint", column="signature",
                        detail=f"the checkpoint's signature does not verify with this server's key{other}: it was edited, or is not this server's")]
    where = f"position {kept.position}"
    if kept.position == 0:
        return []  # the empty log's checkpoint: every log extends it
    if kept.position > report.head_position:
        return [Finding(table=table, position=kept.position, expected=f"position {kept.position}", found=f"position {report.head_position}",
                        detail=f"the log ends at position {report.head_position}, before the checkpoint's {where}: events it pinned were deleted")]
    if at_checkpoint is None:
        return [Finding(table=table, position=kept.position,
                        detail=f"no stored event at the checkpoint's {where}: the event it pinned was deleted")]
    if at_checkpoint != kept.hash:
        return [Finding(table=table, position=kept.position, expected=kept.hash, found=at_checkpoint,
                        detail=f"the log up to {where} does not hash to the checkpoint's hash: history up to it was rewritten")]
    return []


def key_findings(log: ParleyLog, keys: KeyStore) -> tuple[int, list[Finding]]:
    """The keys table against the key events of the audit stream: every row made by an event, every column as the events say."""
    rows = keys.at_rest()
    try:
        records = log.recorded_after(AUDIT_STREAM, None)
    except (EventUnreadableError, msgspec.DecodeError) as error:
        return len(rows), [Finding(table=KEYS_TABLE, detail=f"the key events cannot be read, so the keys table cannot be checked: {error}")]
    created: dict[str, RecordedEvent] = {}
    revoked: dict[str, RecordedEvent] = {}
    for record in records:
        if isinstance(record.event, KeyCreated):
            created.setdefault(record.event.key_id, record)
        elif isinstance(record.event, KeyRevoked):
            revoked.setdefault(record.event.key_id, record)
    found: list[Finding] = []
    for row in rows:
        if row.id not in created:
            found.append(Finding(table=KEYS_TABLE, key_id=row.id,
                                 detail=f"the key {row.name!r} ({row.id}, {row.role}) has no key_created event: the row was added outside Parley"))
            continue
        found += _key_row_findings(row, created[row.id], revoked.get(row.id))
    rowed = {row.id for row in rows}
    found += [
        Finding(table=KEYS_TABLE, key_id=key_id, event_id=record.event_id,
                detail=f"the key_created event {record.event_id} of key {key_id} has no row: the row was deleted")
        for key_id, record in created.items()
        if key_id not in rowed
    ]
    return len(rows), found


def _key_row_findings(row: KeyAtRest, created: RecordedEvent, revoked: RecordedEvent | None) -> list[Finding]:
    event: KeyCreated = created.event  # type: ignore[assignment]
    revoking = revoked or created
    checks = [
        ("name", created, event.name, row.name),
        ("role", created, event.role, row.role),
        ("created_by", created, created.recorded_by, row.created_by),
        ("revoked_by", revoking, revoked.recorded_by if revoked else None, row.revoked_by),
    ]
    if event.fingerprint is not None:
        # Since keys record a fingerprint, a row and its event are written in one transaction with one time.
        # Older rows were stamped apart from their events (by another clock, in Parley 0.1): their times are not checked.
        checks += [
            ("created_at", created, stamp(created.recorded_at), row.created_at),
            ("revoked_at", revoking, stamp(revoked.recorded_at) if revoked else None, row.revoked_at),
        ]
    else:
        checks.append(("revoked_at", revoking, "set" if revoked else None, "set" if row.revoked_at else None))
    found = [
        Finding(table=KEYS_TABLE, key_id=row.id, event_id=record.event_id, column=column, expected=expected, found=held,
                detail=f"the key {row.id} has {column} {held!r}; its key events say {expected!r}")
        for column, record, expected, held in checks
        if expected != held
    ]
    if event.fingerprint is not None and event.fingerprint != row.fingerprint:
        found.append(Finding(table=KEYS_TABLE, key_id=row.id, event_id=created.event_id, column="key_hash",
                             detail=f"the key {row.id}'s secret digest is not the one its key_created event recorded: the secret was replaced"))
    return found
