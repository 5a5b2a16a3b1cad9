"""What every reader shows of an event: a title, one line, its details, the lane it goes in and its group.

One `describe(event)` serves the API (each event carries its `description`), the CLI, the web page,
TimelineJS, the iCalendar feed and the CSV. A new event type adds one case here; a test fails
until it has one.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from events.payloads import (
    AgreementReached,
    ConcessionMade,
    CoverageDeclared,
    DeadlineExtended,
    DeadlineResolved,
    DeadlineSet,
    DemandMade,
    Event,
    EventCorrected,
    EventRetracted,
    ExemptionGranted,
    IssueRaised,
    IssueUpdated,
    KeyCreated,
    KeyRevoked,
    MeasureChanged,
    NegotiationOpened,
    RoundHeld,
    RoundScheduled,
    StatementMade,
    Suspension,
    TruceAgreed,
    TruceEnded,
    TruceExtended,
)

# The web page's lanes, top to bottom. `amendments` go in the lane of the event they amend; `audit` in none.
Lane = Literal["rounds", "truces", "statements", "measures", "deadlines", "issues", "amendments", "audit"]
LANES: tuple[Lane, ...] = ("rounds", "truces", "statements", "measures", "deadlines", "issues", "amendments", "audit")


class Description(msgspec.Struct, frozen=True, kw_only=True):
    # a headline built from the payload
    title: str
    # one line: the event's own summary when it has one, else the title and its details
    summary: str
    # what the title leaves out (scope, dates, terms), plain text, may be empty
    detail: str
    lane: Lane
    # a finer grouping for exports (TimelineJS groups): measures by direction, agreements apart from rounds
    group: str


def _join(*parts: str | None, sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


def _pct(rate: float | None) -> str | None:
    return None if rate is None else f"{rate:g}%"


def due(due_on: dt.date, ends: str | None) -> str:
    """A due date as the law words it: a start-of-day deadline ends at 12:01 a.m. on its date."""
    return f"12:01 a.m. {due_on.isoformat()}" if ends == "start_of_day" else due_on.isoformat()


def suspension(named: str | Suspension) -> str:
    if isinstance(named, str):
        return named
    terms = [f"{_pct(named.suspended_points)} suspended"] if named.suspended_points is not None else []
    terms += [f"{_pct(named.lapse_rate_pct)} on lapse"] if named.lapse_rate_pct is not None else []
    return named.measure_id + (f" ({', '.join(terms)})" if terms else "")


def _parts(event: Event) -> tuple[str, str, Lane, str]:
    """(title, detail, lane, group) of one event."""
    match event:
        case MeasureChanged():
            title = _join(
                f"{event.imposed_by} → {event.applies_to}: {event.name or event.measure_id} ({event.kind.replace('_', ' ')})",
                event.status.replace("_", " "),
                _pct(event.rate_pct),
            )
            detail = _join(
                f"from {event.effective_from.isoformat()}" if event.effective_from else None,
                f"until {event.effective_until.isoformat()}" if event.effective_until else None,
                f"until deadline {event.until_deadline}" if event.until_deadline else None,
                f"({event.legal_basis})" if event.legal_basis else None,
                f"on {event.scope}" if event.scope else None,
            )
            return title, detail, "measures", f"Measures: {event.imposed_by}→{event.applies_to}"
        case ExemptionGranted():
            since = event.effective_from or event.occurred_on
            return f"Exemption from {event.measure_id} from {since.isoformat()}", event.description or "", "measures", "Exemptions"
        case StatementMade():
            said = f"“{event.quote}”" if event.quote else event.paraphrase
            return event.speaker.name + (f" ({event.stance})" if event.stance else ""), said or "", "statements", "Statements"
        case RoundScheduled() | RoundHeld():
            verb = "held" if isinstance(event, RoundHeld) else "scheduled"
            dates = event.starts_on.isoformat() + (f" – {event.ends_on.isoformat()}" if event.ends_on else "")
            detail = _join(dates, f"in {event.location}" if event.location else None, f"· {event.outcome}" if event.outcome else None)
            return f"Round {event.name} {verb}", detail, "rounds", "Rounds"
        case AgreementReached():
            parties = ", ".join(p if isinstance(p, str) else p.name for p in event.parties)
            detail = _join(event.terms, f"Parties: {parties}." if parties else None, f"Signed {event.signed_on.isoformat()}." if event.signed_on else None)
            return f"Agreement reached: {event.title}", detail, "rounds", "Agreements"
        case DeadlineSet():
            return f"Deadline {event.deadline_id} set: {event.title}, due {due(event.due_on, event.ends)}", event.consequence or "", "deadlines", "Deadlines"
        case DeadlineExtended():
            return (
                f"Deadline {event.deadline_id} extended to {due(event.due_on, event.ends)}",
                _join(event.reason, event.consequence, sep=" · "), "deadlines", "Deadlines",
            )
        case DeadlineResolved():
            return f"Deadline {event.deadline_id} resolved", event.outcome or "", "deadlines", "Deadlines"
        case IssueRaised():
            return f"Issue {event.issue_id} raised: {event.title}", event.text or "", "issues", "Issues"
        case IssueUpdated():
            change = event.status.replace("_", " ") if event.status else "updated"
            return f"Issue {event.title or event.issue_id}: {change}", event.text or "", "issues", "Issues"
        case DemandMade() | ConcessionMade():
            verb = "demands" if isinstance(event, DemandMade) else "concedes"
            about = event.issue_id or event.measure_id
            title = f"{event.by} {verb}" + (f" of {event.to}" if event.to else "") + (f" ({about})" if about else "")
            return title, event.text or "", "issues", "Issues"
        case TruceAgreed() | TruceExtended() | TruceEnded():
            verb = {TruceAgreed: "agreed", TruceExtended: "extended", TruceEnded: "ended"}[type(event)]
            detail = _join(
                f"from {event.effective_from.isoformat()}" if event.effective_from else None,
                f"until deadline {event.deadline_id}" if event.deadline_id else None,
                f"· suspends {', '.join(suspension(s) for s in event.suspends)}" if event.suspends else None,
                f"· {event.terms}" if event.terms else None,
            )
            return f"Truce {event.truce_id} {verb}", detail, "truces", "Truces"
        case CoverageDeclared():
            return f"Record kept complete through {event.record_through.isoformat()}", event.note or "", "rounds", "Record"
        case NegotiationOpened():
            return f"Opened: {event.title} ({', '.join(event.parties)})", event.description or "", "rounds", "Negotiation"
        case EventCorrected():
            return f"Corrects event {event.target[:8]}", event.reason or "", "amendments", "Corrections"
        case EventRetracted():
            return f"Retracts event {event.target[:8]}", event.reason or "", "amendments", "Corrections"
        case KeyCreated():
            return f"Key {event.name} created ({event.role})", "", "audit", "Keys"
        case KeyRevoked():
            return f"Key {event.name} revoked", "", "audit", "Keys"
    raise TypeError(f"no description for {type(event).__name__}: add a case to events/describe.py")


# whose details read on from the title ("in force 34% from 2025-04-05"); the others' follow a colon
_RUN_ON = (MeasureChanged, RoundScheduled, RoundHeld, TruceAgreed, TruceExtended, TruceEnded)


def describe(event: Event) -> Description:
    title, detail, lane, group = _parts(event)
    line = _join(title, detail, sep=" " if isinstance(event, _RUN_ON) else ": ")
    return Description(title=title, summary=event.summary or line, detail=detail, lane=lane, group=group)
