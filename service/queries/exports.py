"""Exports of a negotiation: JSON Lines, TimelineJS JSON, an iCalendar feed, a tariff CSV (pure formats, then
how an export is read from a store, lazily, a page at a time)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import icalendar
import msgspec

from events.application import ParleyLog
from events.describe import describe
from events.payloads import (
    CORRECTION_TYPES,
    Event,
    EventCorrected,
    EventRetracted,
    MeasureChanged,
    NegotiationOpened,
    Source,
)
from events.records import Recorded
from projections import (
    DeadlinesView,
    DeadlineView,
    Fact,
    State,
    TruceView,
    deadlines,
    view,
)
from projections.truce import truces
from service.queries.store import ReadStore

Format = Literal["jsonl", "timelinejs", "ics", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "timelinejs", "ics", "csv")

# target event_id -> the corrections and retractions of it, in stream order
Amendments = dict[str, list[Recorded]]


# --- the events as now believed --------------------------------------------------------------


def known_by(records: Iterable[Recorded], known_at: dt.datetime | None) -> Iterator[Recorded]:
    """The records recorded by `known_at` (all of them when it is None)."""
    return iter(records) if known_at is None else (r for r in records if r.recorded_at <= known_at)


def amendments_in(records: Iterable[Recorded]) -> Amendments:
    found: Amendments = {}
    for record in records:
        if isinstance(record.event, (EventCorrected, EventRetracted)):
            found.setdefault(record.event.target, []).append(record)
    return found


def believed(records: Iterable[Recorded], amendments: Amendments) -> Iterator[Fact[Event]]:
    """Each event with its payload as now believed, in stream order; retracted events and the amendments left out.

    The opening is kept even if retracted: whoever imports the export opens the negotiation from it.
    """
    for record in records:
        event: Event | None = record.event
        if isinstance(event, (EventCorrected, EventRetracted)):
            continue
        because: tuple[str, ...] = (record.event_id,)
        for amendment in amendments.get(record.event_id, ()):
            match amendment.event:
                case EventRetracted():
                    event = None
                case EventCorrected(replacement=replacement):
                    event, because = replacement, (*because, amendment.event_id)
        if event is None and isinstance(record.event, NegotiationOpened):
            event = record.event
        if event is not None:
            yield Fact(event_id=record.event_id, version=record.originator_version, event=event, because=because)


def in_world_order(facts: Iterable[Fact[Event]]) -> list[Fact[Event]]:
    return sorted(facts, key=lambda f: (f.occurred_on, f.version))


# --- JSON Lines ------------------------------------------------------------------------------


def client_body(value: Any) -> Any:
    """A payload as JSON a client would POST: its `type` and the fields that differ from their defaults."""
    if isinstance(value, msgspec.Struct):
        body: dict[str, Any] = {}
        config = value.__struct_config__
        if config.tag_field is not None:
            body[config.tag_field] = config.tag
        for field in msgspec.structs.fields(value):
            item = getattr(value, field.name)
            if field.default is not msgspec.NODEFAULT and item == field.default:
                continue
            if field.default_factory is not msgspec.NODEFAULT and item == field.default_factory():
                continue
            body[field.encode_name] = client_body(item)
        return body
    if isinstance(value, (tuple, list)):
        return [client_body(item) for item in value]
    if isinstance(value, dict):
        return {key: client_body(item) for key, item in value.items()}
    return msgspec.to_builtins(value)


_encode = msgspec.json.Encoder().encode


def jsonl_line(event: Event) -> bytes:
    return _encode(client_body(event)) + b"\n"


def jsonl_lines(records: Iterable[Recorded], amendments: Amendments | None) -> Iterator[bytes]:
    """One event a line, in stream order, without server-set fields.

    With `amendments`, events as now believed (re-importable: no line names an event id); with None,
    every event as recorded, corrections and retractions included (an archive: their targets are
    the source negotiation's ids).
    """
    if amendments is None:
        return (jsonl_line(r.event) for r in records)
    return (jsonl_line(f.event) for f in believed(records, amendments))


# --- TimelineJS ------------------------------------------------------------------------------


def timeline_date(day: dt.date, precision: str = "day") -> dict[str, int]:
    date = {"year": day.year}
    if precision in ("day", "month"):
        date["month"] = day.month
    if precision == "day":
        date["day"] = day.day
    return date


def _p(text: str | None) -> str:
    return f"<p>{html.escape(text)}</p>" if text else ""


def source_html(source: Source | None) -> str:
    """The source as a paragraph, linked when it has a URL."""
    if source is None:
        return ""
    label = html.escape(f"{source.name}: {source.title}" if source.title else source.name)
    if source.url:
        label = f'<a href="{html.escape(source.url)}" target="_blank" rel="noopener">{label}</a>'
    notes = [source.published_at.isoformat()] if source.published_at else []
    if source.reliability or source.credibility:
        notes.append(f"graded {source.reliability or '?'}{source.credibility or '?'}")
    return f"<p>Source: {label}{' (' + ', '.join(notes) + ')' if notes else ''}</p>"


def timeline_slide(fact: Fact[Event]) -> dict[str, Any]:
    event = fact.event
    described = describe(event)
    return {
        "start_date": timeline_date(event.occurred_on, event.date_precision),
        "text": {"headline": html.escape(described.title), "text": _p(event.summary) + _p(described.detail) + source_html(event.source)},
        "group": described.group,
        "unique_id": fact.event_id,
    }


def timeline_era(truce: TruceView, horizon: dt.date) -> dict[str, Any] | None:
    """A truce from when it took effect to its (extended) deadline, or the day it ended."""
    if truce.effective_from is None:
        return None
    last_day = truce.lapses_on - dt.timedelta(days=1) if truce.lapses_on else None
    end = truce.ended_on or last_day or horizon
    extended = f", extended to {truce.expires_on.isoformat()}" if truce.extensions and truce.expires_on else ""
    return {
        "start_date": timeline_date(truce.effective_from),
        "end_date": timeline_date(max(end, truce.effective_from)),
        "text": {"headline": html.escape(f"Truce {truce.truce_id}{extended}")},
    }


def timelinejs(
    negotiation_id: str, facts: Iterable[Fact[Event]], truces: Sequence[TruceView], horizon: dt.date
) -> dict[str, Any]:
    """TimelineJS3 JSON: events as slides grouped by kind (measures by direction), truces as eras."""
    ordered = in_world_order(facts)
    opened = next((f.event for f in ordered if isinstance(f.event, NegotiationOpened)), None)
    slides = [timeline_slide(f) for f in ordered if not isinstance(f.event, NegotiationOpened)]
    if not slides:  # TimelineJS needs one slide; the opening is the only event
        slides = [timeline_slide(f) for f in ordered]
    title = opened.title if opened else negotiation_id
    parties = _p(f"Parties: {', '.join(opened.parties)}") if opened else ""
    intro = (_p(opened.description) if opened else "") + parties + (source_html(opened.source) if opened else "")
    eras = [era for t in truces if (era := timeline_era(t, horizon)) is not None]
    return {
        "title": {"text": {"headline": html.escape(title), "text": intro}, "unique_id": f"{negotiation_id}-title"},
        "events": slides,
        "eras": eras,
        "scale": "human",
    }


# --- iCalendar -------------------------------------------------------------------------------


def deadline_uid(negotiation_id: str, deadline_id: str) -> str:
    """Stable per negotiation and deadline, so a subscribed calendar moves the event instead of adding one."""
    return f"{negotiation_id}.{deadline_id}@parley"


def last_day(deadline: DeadlineView) -> dt.date:
    """The last day within a deadline: the day a calendar shows it on."""
    return deadline.lapses_on - dt.timedelta(days=1)


def _deadline_description(deadline: DeadlineView) -> str:
    lines = [deadline.consequence] if deadline.consequence else []
    if deadline.ends == "start_of_day":
        lines.append(
            f"Ends at the start of {deadline.due_on.isoformat()} (12:01 a.m.): {last_day(deadline).isoformat()} is its last day."
        )
    if deadline.original_due_on is not None:
        lines.append(f"Originally due {deadline.original_due_on.isoformat()}.")
    lines += [f"Extended on {e.occurred_on.isoformat()} to {e.due_on.isoformat()}." for e in deadline.extensions]
    if deadline.resolved_on is not None:
        lines.append(f"Resolved on {deadline.resolved_on.isoformat()}: {deadline.outcome}")
    return "\n".join(lines)


def deadlines_ics(
    negotiation_id: str,
    title: str,
    deadlines: DeadlinesView,
    facts: Mapping[str, Fact[Event]],
    stamp: dt.datetime,
) -> bytes:
    """One all-day VEVENT per deadline on its current due date; SEQUENCE counts its extensions."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Parley//Negotiation deadlines//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"{title}: deadlines")
    calendar.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for deadline in sorted((*deadlines.upcoming, *deadlines.passed), key=lambda d: (d.due_on, d.deadline_id)):
        event = icalendar.Event()
        event.add("uid", deadline_uid(negotiation_id, deadline.deadline_id))
        event.add("dtstamp", stamp.astimezone(dt.UTC))
        event.add("dtstart", last_day(deadline))
        event.add("dtend", deadline.lapses_on)
        event.add("sequence", len(deadline.extensions))
        event.add("summary", deadline.title or deadline.deadline_id)
        history = [f"{facts[i].occurred_on.isoformat()}: {describe(facts[i].event).summary}" for i in deadline.because if i in facts]
        description = "\n".join(filter(None, [_deadline_description(deadline), *history]))
        if description:
            event.add("description", description)
        event.add("transp", "TRANSPARENT")
        event.add("categories", [negotiation_id])
        url = next(
            (s.url for i in deadline.because if i in facts and (s := facts[i].event.source) is not None and s.url), None
        )
        if url:
            event.add("url", url)
        calendar.add_component(event)
    return calendar.to_ical()


# --- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "negotiation_id",
    "measure_id",
    "imposed_by",
    "applies_to",
    "legal_basis",
    "status",
    "rate_pct",
    "announced_on",
    "effective_from",
    "effective_until",
    "until_deadline",
    "source_name",
    "source_url",
    "event_id",
    "description",
)
# A cell a spreadsheet would read as a formula (CSV injection); a leading quote keeps it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def tariff_rows(negotiation_id: str, facts: Iterable[Fact[Event]]) -> Iterator[dict[str, str]]:
    """One row per change to a tariff as now believed, in world order."""
    for fact in in_world_order(facts):
        change = fact.event
        if not isinstance(change, MeasureChanged) or change.kind != "tariff":
            continue
        source = change.source
        values = {
            "negotiation_id": negotiation_id,
            "measure_id": change.measure_id,
            "imposed_by": change.imposed_by,
            "applies_to": change.applies_to,
            "legal_basis": change.legal_basis,
            "status": change.status,
            "rate_pct": change.rate_pct,
            "announced_on": change.occurred_on,
            "effective_from": change.effective_from,
            "effective_until": change.effective_until,
            "until_deadline": change.until_deadline,
            "source_name": source.name if source else None,
            "source_url": source.url if source else None,
            "event_id": fact.event_id,
            "description": describe(change).summary,
        }
        yield {column: _cell(values[column]) for column in CSV_COLUMNS}


def tariff_csv(negotiation_id: str, facts: Iterable[Fact[Event]]) -> Iterator[str]:
    """The tariff schedule over time as CSV text, a header and then one line a row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writeheader()
    yield flush()
    for row in tariff_rows(negotiation_id, facts):
        writer.writerow(row)
        yield flush()


# --- from a folded state ---------------------------------------------------------------------


def rendered(state: State, fmt: Format, known_at: dt.datetime) -> Iterator[bytes]:
    """timelinejs, ics or csv of a negotiation's state, from what was recorded by `known_at`."""
    negotiation_id = state.negotiation_id or ""
    records = list(known_by(state.records, known_at))
    facts = list(believed(records, amendments_in(records)))
    # A view on the last world date recorded sees every deadline extension and truce there is.
    horizon = max((r.event.occurred_on for r in records), default=known_at.date())
    seen = view(state, horizon, known_at)
    if fmt == "timelinejs":
        return iter([_encode(timelinejs(negotiation_id, facts, truces(seen), horizon))])
    if fmt == "ics":
        opened = next((f.event for f in facts if isinstance(f.event, NegotiationOpened)), None)
        title = opened.title if opened else negotiation_id
        by_id = {f.event_id: f for f in facts}
        return iter([deadlines_ics(negotiation_id, title, deadlines(seen), by_id, known_at)])
    if fmt == "csv":
        return (line.encode() for line in tariff_csv(negotiation_id, facts))
    raise ValueError(f"{fmt} is streamed from the store, not rendered from a state")


# --- reading an export from the store ----------------------------------------------------------

# Stored events read per query, and JSON lines per chunk.
PAGE = 500
HISTORIES = ("current", "full")

MEDIA_TYPES: dict[Format, str] = {
    "jsonl": "application/x-ndjson",
    "timelinejs": "application/json",
    "ics": "text/calendar",
    "csv": "text/csv",
}
FILE_NAMES: dict[Format, str] = {
    "jsonl": "{}.jsonl",
    "timelinejs": "{}.timeline.json",
    "ics": "{}-deadlines.ics",
    "csv": "{}-tariffs.csv",
}


@dataclasses.dataclass(frozen=True)
class Export:
    media_type: str
    filename: str
    # produced lazily: reading them may still go to the store
    chunks: Iterator[bytes]


def stored(
    log: ParleyLog, negotiation_id: str, up_to: int, match: Callable[[Recorded], bool] | None = None
) -> Iterator[Recorded]:
    """The stream's records up to version `up_to`, read a page at a time."""
    after = 0
    while after < up_to:
        found, more = log.stream(negotiation_id, after_version=after, limit=PAGE, match=match)
        for appended in found:
            if appended.record.originator_version > up_to:
                return
            yield appended.record
        if more is None:
            return
        after = more


def _batches(lines: Iterator[bytes], size: int) -> Iterator[bytes]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)


def _jsonl(log: ParleyLog, negotiation_id: str, known_at: dt.datetime, history: bool) -> Iterator[bytes]:
    # Pin the version, so both passes read one snapshot while writers go on appending.
    up_to = log.negotiation(negotiation_id).version

    def known(record: Recorded) -> bool:
        return record.recorded_at <= known_at

    def known_amendment(record: Recorded) -> bool:
        return record.event.type in CORRECTION_TYPES and known(record)

    # Only the amendments are held in memory; the events stream past.
    amendments = None if history else amendments_in(stored(log, negotiation_id, up_to, known_amendment))
    return _batches(jsonl_lines(stored(log, negotiation_id, up_to, known), amendments), PAGE)


def export(store: ReadStore, negotiation_id: str, fmt: Format, *, known_at: dt.datetime, history: bool = False) -> Export:
    """An export of what was recorded by `known_at`; NegotiationNotFoundError before anything is produced."""
    if fmt == "jsonl":
        chunks = _jsonl(store.log, negotiation_id, known_at, history)
    else:
        chunks = rendered(store.states.state(negotiation_id), fmt, known_at)
    return Export(media_type=MEDIA_TYPES[fmt], filename=FILE_NAMES[fmt].format(negotiation_id), chunks=chunks)
