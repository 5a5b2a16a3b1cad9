"""Tamper evidence: recompute the hash chain over the log, check the index against it, and check it against signed checkpoints."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from events.records import IndexFields, index_fields, stream_id
from events.store import GENESIS, INDEXED_COLUMNS, link

MAX_FINDINGS = 100
INDEX_TABLE = "parley_event_index"


class Finding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One thing verify found wrong: the table, the row (position, event or key), the column, what the hashed events say and what the table holds."""

    table: str
    detail: str
    position: int | None = None
    event_id: str | None = None
    key_id: str | None = None
    column: str | None = None
    expected: str | None = None
    found: str | None = None


class ChainReport(msgspec.Struct, kw_only=True):
    """What `verify` found: `ok` only when nothing is wrong; `problems` name each table, row and column that is (at most 100)."""

    ok: bool
    checked: int
    head_position: int = 0
    head_hash: str = GENESIS
    broken_at: int | None = None
    previous_position: int | None = None
    reason: str | None = None
    keys_checked: int = 0
    checkpoint_position: int | None = None
    problem_count: int = 0
    problems: list[Finding] = msgspec.field(default_factory=list)

    def add(self, *findings: Finding) -> None:
        for finding in findings:
            self.problem_count += 1
            if len(self.problems) < MAX_FINDINGS:
                self.problems.append(finding)
        self.ok = self.problem_count == 0


Hex64 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Short = Annotated[str, msgspec.Meta(max_length=200)]


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A witness outsiders keep: the log's head at one moment, signed by the server."""

    position: Annotated[int, msgspec.Meta(ge=0)]
    hash: Hex64
    recorded_at: Short
    key_id: Short
    signature: Short

    def signed_bytes(self) -> bytes:
        return msgspec.json.encode({"position": self.position, "hash": self.hash, "recorded_at": self.recorded_at})


def _fields(state: bytes) -> IndexFields | None:
    try:
        return index_fields(state)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


# A log has few streams: parse each stored form of a stream id once per process, not once per event.
@functools.lru_cache(maxsize=4096)
def _uuid(value: Any) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        return str(value)


@functools.lru_cache(maxsize=4096)
def _stream(negotiation_id: str) -> str:
    return str(stream_id(negotiation_id))


def _index_findings(row: dict[str, Any], fields: IndexFields, position: int) -> list[Finding]:
    """The index row's columns against the hashed event they describe."""
    hashed = {
        "event_id": fields.event_id, "negotiation_id": fields.negotiation_id, "originator_id": _uuid(row["originator_id"]),
        "originator_version": str(row["originator_version"]), "topic": row["topic"], "target_id": fields.target,
        "recorded_by": fields.recorded_by, "recorded_at": fields.recorded_at,
    }
    indexed = {column: row[f"index_{column}"] for column in INDEXED_COLUMNS}
    indexed["originator_id"] = _uuid(indexed["originator_id"])
    indexed["originator_version"] = str(indexed["originator_version"])
    return [
        Finding(table=INDEX_TABLE, position=position, event_id=fields.event_id, column=column, expected=hashed[column],
                found=indexed[column],
                detail=f"the index row at position {position} says {column} {indexed[column]!r}; the hashed event says {hashed[column]!r}")
        for column in INDEXED_COLUMNS
        if hashed[column] != indexed[column]
    ]


class _Break(msgspec.Struct):
    """A link that did not recompute, judged when the next link shows which side changed."""

    position: int
    previous_position: int
    event_id: str | None
    expected: str
    stored: str


def _judged(broken: _Break, table: str, next_link: str | None, via_stored: str | None, via_expected: str | None) -> Finding:
    """Which side of a broken link changed: the next link was computed from the stored hash (so the event changed, or
    one before it is gone) or from the recomputed one (so the stored hash changed); with no next link, either."""
    p, gap = broken.position, broken.position - broken.previous_position > 1
    if next_link is not None and next_link == via_expected:
        return Finding(table=INDEX_TABLE, position=p, event_id=broken.event_id, column="hash", expected=broken.expected, found=broken.stored,
                       detail=f"the hash at position {p} was changed: the event and the next link recompute to {broken.expected}")
    if next_link is not None and next_link == via_stored and not gap:
        return Finding(table=table, position=p, event_id=broken.event_id, column="state",
                       detail=f"the stored event at position {p} was changed: it no longer hashes to its recorded link")
    if next_link is not None and next_link == via_stored:
        return Finding(table=table, position=p, event_id=broken.event_id,
                       detail=f"an event between positions {broken.previous_position} and {p} was deleted, or the event at {p} was changed")
    return Finding(table=table, position=p, event_id=broken.event_id, expected=broken.expected, found=broken.stored,
                   detail=f"the link at position {p} does not recompute: this event or its hash was changed, "
                          f"or an event between position {broken.previous_position} and it was deleted or inserted")


def verify_chain(
    rows: Iterable[dict[str, Any]], *, stop_at: int | None = None, events_table: str = "events"
) -> tuple[ChainReport, str | None]:
    """Walk rows (stored events joined to their index rows) in position order.

    Each link is recomputed from the stored link before it, so a change names its own position
    and the walk goes on; the hash recomputed from the first event without trusting any stored
    link is the log's true head hash, and is returned at `stop_at` for checkpoint checks.
    """
    report = ChainReport(ok=True, checked=0)
    recomputed = stored_prev = GENESIS
    previous_position, at_stop = 0, None
    broken: _Break | None = None
    for row in rows:
        position = int(row["position"])
        originator_id = _uuid(row["originator_id"])
        version, topic, state = int(row["originator_version"]), row["topic"], bytes(row["state"])
        before, recomputed = recomputed, link(recomputed, position, originator_id, version, topic, state)
        if position == stop_at:
            at_stop = recomputed
        expected = recomputed if stored_prev == before else link(stored_prev, position, originator_id, version, topic, state)
        if broken is not None:
            via_expected = link(broken.expected, position, originator_id, version, topic, state)
            report.add(_judged(broken, events_table, row["hash"], expected, via_expected))
            if row["hash"] == via_expected:
                expected = via_expected  # only the hash before was changed: this link holds
            broken = None
        fields = _fields(state)
        event_id = fields.event_id if fields else None
        if fields is None:
            report.add(Finding(table=events_table, position=position, column="state",
                               detail=f"the stored event at position {position} does not decode as an event"))
        elif originator_id != _stream(fields.negotiation_id):
            report.add(Finding(table=events_table, position=position, event_id=event_id, column="originator_id",
                               expected=_stream(fields.negotiation_id), found=originator_id,
                               detail=f"the event at position {position} names negotiation {fields.negotiation_id!r} but is stored in another stream"))
        reason = None
        if row["hash"] is None:
            reason = "the index row with its hash is missing"
            report.add(Finding(table=INDEX_TABLE, position=position, event_id=event_id,
                               detail=f"the stored event at position {position} has no index row, so no hash"))
        elif row["hash"] != expected:
            reason = "the stored event or an earlier one was changed, removed or inserted"
            broken = _Break(position, previous_position, event_id, expected, row["hash"])
        if row["hash"] is not None and fields is not None:
            report.add(*_index_findings(row, fields, position))
        if reason is not None and report.broken_at is None:
            report.broken_at, report.previous_position, report.reason = position, previous_position, reason
        stored_prev = row["hash"] if row["hash"] is not None else expected
        previous_position = position
        report.checked += 1
    if broken is not None:
        report.add(_judged(broken, events_table, None, None, None))
    report.head_position, report.head_hash = previous_position, recomputed
    return report, at_stop


def orphan_findings(rows: Iterable[dict[str, Any]]) -> list[Finding]:
    """Index rows whose stored event is gone: audit answers would name events the log does not hold."""
    return [
        Finding(table=INDEX_TABLE, position=int(row["position"]), event_id=row["event_id"],
                detail=f"the index row at position {row['position']} has no stored event: the event was deleted, or the row added")
        for row in rows
    ]
