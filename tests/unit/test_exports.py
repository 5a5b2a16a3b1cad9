"""Export formats as pure functions over recorded events: JSON Lines, TimelineJS, iCalendar, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Sequence
from typing import Any

import icalendar
import msgspec

from events.datasets import load
from events.payloads import (
    RESERVED_FIELDS,
    AnyEvent,
    DeadlineExtended,
    Event,
    EventCorrected,
    EventRetracted,
    MeasureChanged,
    NegotiationOpened,
    Person,
    Source,
    StatementMade,
)
from events.records import Recorded, stream_id
from projections import fold
from service.queries.exports import (
    CSV_COLUMNS,
    amendments_in,
    deadline_uid,
    jsonl_lines,
    known_by,
    rendered,
)

NEGOTIATION = "us-china-trade-2025"
DATASET = load(NEGOTIATION)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
D = dt.date.fromisoformat
OPENED = NegotiationOpened(occurred_on=D("2025-01-20"), title="Talks", parties=("US", "CN"))


def recorded(events: Sequence[Event], negotiation: str = NEGOTIATION) -> list[Recorded]:
    """Events as stored one second apart, with event ids 0...01, 0...02, ..."""
    return [
        Recorded(
            originator_id=stream_id(negotiation),
            originator_version=version,
            event_id=str(uuid.UUID(int=version)),
            negotiation_id=negotiation,
            recorded_at=START + dt.timedelta(seconds=version),
            recorded_by="test",
            request_id="test",
            event=event,  # type: ignore[arg-type]
        )
        for version, event in enumerate(events, start=1)
    ]


def event_id(version: int) -> str:
    return str(uuid.UUID(int=version))


def tariff(rate: float, **extra: Any) -> MeasureChanged:
    fields: dict[str, Any] = {
        "occurred_on": D("2025-02-01"), "measure_id": "us-ieepa-fentanyl-cn", "kind": "tariff", "status": "in_force",
        "imposed_by": "US", "applies_to": "CN", "legal_basis": "IEEPA", "rate_pct": rate,
        "effective_from": D("2025-02-04"), **extra,
    }
    return MeasureChanged(**fields)


STATEMENT = StatementMade(occurred_on=D("2025-02-02"), speaker=Person(name="Lin Jian", party="CN"), quote="We oppose it.")


def lines_of(records: Sequence[Recorded], history: bool = False) -> list[bytes]:
    return list(jsonl_lines(records, None if history else amendments_in(records)))


def render(records: Sequence[Recorded], fmt: str, known_at: dt.datetime | None = None) -> bytes:
    return b"".join(rendered(fold(records), fmt, known_at or START + dt.timedelta(days=1)))  # type: ignore[arg-type]


# --- JSON Lines ------------------------------------------------------------------------------


def test_jsonl_of_the_dataset_gives_back_the_dataset_events_without_server_fields() -> None:
    lines = lines_of(recorded(DATASET))
    decoded = [msgspec.json.decode(line, type=AnyEvent) for line in lines]  # type: ignore[var-annotated]
    assert decoded == DATASET
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    bodies = [json.loads(line) for line in lines]
    assert bodies[0]["type"] == "negotiation_opened"
    assert not any(RESERVED_FIELDS & body.keys() for body in bodies)


def test_jsonl_leaves_out_fields_at_their_defaults() -> None:
    body = json.loads(lines_of(recorded([OPENED]))[0])
    assert body == {"type": "negotiation_opened", "occurred_on": "2025-01-20", "title": "Talks", "parties": ["US", "CN"]}


def test_jsonl_exports_the_current_belief_corrections_applied_retracted_events_left_out() -> None:
    records = recorded([
        OPENED,
        tariff(10),
        STATEMENT,
        EventCorrected(occurred_on=D("2025-02-05"), target=event_id(2), replacement=tariff(20), reason="typo"),
        EventRetracted(occurred_on=D("2025-02-05"), target=event_id(3), reason="misquoted"),
    ])
    decoded = [msgspec.json.decode(line, type=AnyEvent) for line in lines_of(records)]  # type: ignore[var-annotated]
    assert decoded == [OPENED, tariff(20)]
    assert not any(event_id(i).encode() in line for line in lines_of(records) for i in range(1, 6))


def test_jsonl_applies_amendments_in_the_order_they_were_recorded() -> None:
    records = recorded([
        OPENED,
        tariff(10),
        EventCorrected(occurred_on=D("2025-02-05"), target=event_id(2), replacement=tariff(20)),
        EventCorrected(occurred_on=D("2025-02-06"), target=event_id(2), replacement=tariff(30)),
    ])
    assert [msgspec.json.decode(line, type=AnyEvent) for line in lines_of(records)] == [OPENED, tariff(30)]


def test_jsonl_keeps_a_retracted_opening_so_the_export_can_still_be_imported() -> None:
    records = recorded([OPENED, EventRetracted(occurred_on=D("2025-02-05"), target=event_id(1), reason="dup")])
    assert [json.loads(line)["type"] for line in lines_of(records)] == ["negotiation_opened"]


def test_jsonl_full_history_keeps_corrections_and_retractions_as_recorded() -> None:
    events: list[Event] = [
        OPENED,
        tariff(10),
        STATEMENT,
        EventCorrected(occurred_on=D("2025-02-05"), target=event_id(2), replacement=tariff(20)),
        EventRetracted(occurred_on=D("2025-02-05"), target=event_id(3), reason="misquoted"),
    ]
    lines = lines_of(recorded(events), history=True)
    assert [msgspec.json.decode(line, type=AnyEvent) for line in lines] == events  # type: ignore[var-annotated]
    assert json.loads(lines[3])["replacement"]["type"] == "measure_changed"


def test_a_correction_recorded_after_known_at_is_not_applied() -> None:
    records = recorded([
        OPENED, tariff(10), EventCorrected(occurred_on=D("2025-02-05"), target=event_id(2), replacement=tariff(20))
    ])
    before = list(known_by(records, records[1].recorded_at))
    assert [msgspec.json.decode(line, type=AnyEvent) for line in lines_of(before)] == [OPENED, tariff(10)]


# --- TimelineJS ------------------------------------------------------------------------------

_DATE_PARTS = {"year", "month", "day", "hour", "minute", "second", "millisecond", "display_date", "format"}
_SLIDE_KEYS = {"start_date", "end_date", "text", "media", "group", "display_date", "background", "autolink", "unique_id"}
_RANGES = {"month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}


def _check_date(date: Any, where: str) -> dt.date:
    assert isinstance(date, dict) and set(date) <= _DATE_PARTS, f"{where}: unknown date parts {date}"
    assert isinstance(date.get("year"), int), f"{where}: a date needs a numeric year"
    for part, (low, high) in _RANGES.items():
        if part in date:
            assert isinstance(date[part], int) and low <= date[part] <= high, f"{where}.{part} out of range: {date}"
    if "day" in date:
        assert "month" in date, f"{where}: a day needs a month"
    return dt.date(date["year"], date.get("month", 1), date.get("day", 1))


def _check_text(text: Any, where: str) -> None:
    assert isinstance(text, dict) and set(text) <= {"headline", "text"}, f"{where}: text is {{headline, text}}"
    assert all(isinstance(v, str) for v in text.values()), f"{where}: headline and text are strings"


def _check_slide(slide: Any, where: str, *, dated: bool) -> None:
    assert isinstance(slide, dict) and set(slide) <= _SLIDE_KEYS, f"{where}: unknown keys {set(slide) - _SLIDE_KEYS}"
    if dated or "start_date" in slide:
        start = _check_date(slide["start_date"], f"{where}.start_date")
        if "end_date" in slide:
            assert _check_date(slide["end_date"], f"{where}.end_date") >= start, f"{where} ends before it starts"
    if "text" in slide:
        _check_text(slide["text"], f"{where}.text")
    if "media" in slide:
        assert isinstance(slide["media"], dict) and isinstance(slide["media"].get("url"), str), f"{where}.media.url"
    for key in ("group", "display_date", "unique_id"):
        if key in slide:
            assert isinstance(slide[key], str) and slide[key], f"{where}.{key} is a non-empty string"


def assert_timelinejs_shape(document: Any) -> None:
    """The TimelineJS3 JSON format as documented: a title slide, dated event slides, eras with both ends."""
    assert isinstance(document, dict) and set(document) <= {"title", "events", "eras", "scale"}
    events = document["events"]
    assert isinstance(events, list) and events, "TimelineJS needs at least one event"
    if "title" in document:
        _check_slide(document["title"], "title", dated=False)
    for i, slide in enumerate(events):
        _check_slide(slide, f"events[{i}]", dated=True)
    ids = [s["unique_id"] for s in [*events, document.get("title", {})] if "unique_id" in s]
    assert len(ids) == len(set(ids)), "unique_id must be unique"
    for i, era in enumerate(document.get("eras", [])):
        assert isinstance(era, dict) and set(era) <= {"start_date", "end_date", "text"}, f"eras[{i}]"
        start = _check_date(era["start_date"], f"eras[{i}].start_date")
        assert _check_date(era["end_date"], f"eras[{i}].end_date") >= start
        if "text" in era:
            _check_text(era["text"], f"eras[{i}].text")
    assert document.get("scale", "human") in ("human", "cosmological")


def test_timelinejs_of_the_dataset_has_the_documented_shape() -> None:
    document = json.loads(render(recorded(DATASET), "timelinejs"))
    assert_timelinejs_shape(document)
    assert document["title"]["text"]["headline"] == "US–China trade talks 2025"
    assert len(document["events"]) == len(DATASET) - 1  # every event but the opening, which is the title


def test_timelinejs_groups_slides_by_kind_and_measures_by_direction() -> None:
    document = json.loads(render(recorded(DATASET), "timelinejs"))
    groups = {slide["group"] for slide in document["events"]}
    assert {"Measures: US→CN", "Measures: CN→US", "Statements", "Rounds", "Deadlines", "Issues"} <= groups
    by_id = {s["unique_id"]: s for s in document["events"]}
    for record in recorded(DATASET):
        if isinstance(record.event, MeasureChanged):
            assert by_id[record.event_id]["group"] == f"Measures: {record.event.imposed_by}→{record.event.applies_to}"


def test_timelinejs_shows_the_truce_as_an_era_to_its_extended_deadline() -> None:
    document = json.loads(render(recorded(DATASET), "timelinejs"))
    (era,) = document["eras"]
    assert era["start_date"] == {"year": 2025, "month": 5, "day": 14}
    # extended to 12:01 a.m. on 10 Jan 2027 (as the record last has it): 9 Jan is the truce's last day
    assert era["end_date"] == {"year": 2027, "month": 1, "day": 9}
    assert "geneva-truce" in era["text"]["headline"]


def test_timelinejs_links_sources_and_escapes_text() -> None:
    source = Source(name="Reuters <wire>", title="Tariffs & talks", url="https://example.org/a?b=1&c=2")
    records = recorded([OPENED, tariff(10, source=source, summary="Rates <b>rise</b>")])
    (slide,) = json.loads(render(records, "timelinejs"))["events"]
    text = slide["text"]["text"]
    assert '<a href="https://example.org/a?b=1&amp;c=2"' in text
    assert "Reuters &lt;wire&gt;: Tariffs &amp; talks</a>" in text
    assert "Rates &lt;b&gt;rise&lt;/b&gt;" in text


def test_timelinejs_dates_keep_only_the_precision_recorded() -> None:
    records = recorded([OPENED, tariff(10, date_precision="month"), tariff(20, date_precision="year")])
    starts = [s["start_date"] for s in json.loads(render(records, "timelinejs"))["events"]]
    assert starts == [{"year": 2025, "month": 2}, {"year": 2025}]


def test_timelinejs_of_a_negotiation_with_only_its_opening_still_has_a_slide() -> None:
    document = json.loads(render(recorded([OPENED]), "timelinejs"))
    assert_timelinejs_shape(document)
    assert document["events"][0]["group"] == "Negotiation"


# --- iCalendar -------------------------------------------------------------------------------


def deadline_events(ics: bytes) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(ics)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"]
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def test_ics_has_each_deadline_on_its_extended_due_date() -> None:
    events = deadline_events(render(recorded(DATASET), "ics"))
    truce = events[deadline_uid(NEGOTIATION, "truce-expiry")]
    # due "until 12:01 a.m." on 10 Jan 2027: the calendar shows its last day, 9 Jan
    assert truce.decoded("DTSTART") == D("2027-01-09")
    assert truce.decoded("DTEND") == D("2027-01-10")
    assert truce["SEQUENCE"] == 3
    assert str(truce["SUMMARY"]) == "End of the suspension of 24 points of the reciprocal and counter tariffs"
    description = str(truce["DESCRIPTION"])
    assert "34% on the other side's goods" in description and "Originally due 2025-08-12" in description
    assert "Extended on 2025-08-11 to 2025-11-10" in description
    assert "Ends at the start of 2027-01-10 (12:01 a.m.)" in description
    tiktok = events[deadline_uid(NEGOTIATION, "tiktok-enforcement-delay")]
    assert tiktok.decoded("DTSTART") == D("2026-01-23") and tiktok["SEQUENCE"] == 4


def test_ics_keeps_the_uid_when_a_deadline_moves() -> None:
    records = recorded(DATASET)
    extension = next(
        i for i, r in enumerate(records) if isinstance(r.event, DeadlineExtended) and r.event.deadline_id == "truce-expiry"
    )
    before = deadline_events(render(records[:extension], "ics"))
    after = deadline_events(render(records, "ics"))
    uid = deadline_uid(NEGOTIATION, "truce-expiry")
    assert before[uid].decoded("DTSTART") == D("2025-08-11") and before[uid]["SEQUENCE"] == 0
    assert after[uid].decoded("DTSTART") == D("2027-01-09") and after[uid]["SEQUENCE"] == 3
    assert before.keys() <= after.keys()  # later deadlines join; the UID of this one stays


def test_ics_stamps_events_with_the_export_time() -> None:
    at = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    events = deadline_events(render(recorded(DATASET), "ics", known_at=at))
    assert {e.decoded("DTSTAMP") for e in events.values()} == {at}


# --- CSV -------------------------------------------------------------------------------------


def csv_rows(text: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text.decode()))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def test_csv_has_one_row_per_tariff_change_in_world_order() -> None:
    rows = csv_rows(render(recorded(DATASET), "csv"))
    tariffs = [e for e in DATASET if isinstance(e, MeasureChanged) and e.kind == "tariff"]
    assert len(rows) == len(tariffs) > 0
    assert [r["announced_on"] for r in rows] == sorted(e.occurred_on.isoformat() for e in tariffs)
    assert {r["negotiation_id"] for r in rows} == {NEGOTIATION}
    semiconductors = next(r for r in rows if r["measure_id"] == "us-301-semiconductors-cn")
    assert semiconductors["rate_pct"] == "50" and semiconductors["announced_on"] == "2024-09-13"
    assert semiconductors["effective_from"] == "2025-01-01" and semiconductors["effective_until"] == ""


def test_csv_follows_corrections_and_leaves_out_other_measures() -> None:
    records = recorded([
        OPENED,
        tariff(10, source=Source(name="WH", url="https://example.org/eo")),
        MeasureChanged(occurred_on=D("2025-02-04"), measure_id="cn-export-gallium", kind="export_control",
                       status="in_force", imposed_by="CN", applies_to="US"),
        EventCorrected(occurred_on=D("2025-02-05"), target=event_id(2), replacement=tariff(12.5)),
    ])
    (row,) = csv_rows(render(records, "csv"))
    assert row["rate_pct"] == "12.5" and row["event_id"] == event_id(2)
    assert row["source_url"] == ""  # the correction's payload has no source


def test_csv_cells_never_start_a_spreadsheet_formula() -> None:
    records = recorded([OPENED, tariff(10, legal_basis="=HYPERLINK(\"http://evil\")")])
    (row,) = csv_rows(render(records, "csv"))
    assert row["legal_basis"] == "'=HYPERLINK(\"http://evil\")"

