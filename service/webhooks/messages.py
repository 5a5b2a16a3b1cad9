"""What webhooks send: one message per event, plus messages derived from state changes and the calendar.

Every message has a deterministic id built from its cause (an event id, or a deadline and its
due date), so a replay, a restart or a second relay produces the same id and the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from events.records import Recorded
from projections import State, deadlines, issues, tariff_schedule, truce, view

_FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
_encode = msgspec.json.Encoder().encode


class Message(msgspec.Struct, frozen=True):
    id: str
    type: str
    negotiation_id: str | None
    position: int
    body: bytes


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _message(id_: str, type_: str, timestamp: dt.datetime, negotiation_id: str | None, position: int, data: dict[str, Any]) -> Message:
    body = _encode({"type": type_, "timestamp": _stamp(timestamp), "data": data})
    return Message(id=id_, type=type_, negotiation_id=negotiation_id, position=position, body=body)


def _links(negotiation_id: str, event_id: str | None = None) -> dict[str, str]:
    links = {
        "negotiation": f"/v1/negotiations/{negotiation_id}",
        "state": f"/v1/negotiations/{negotiation_id}/state",
    }
    if event_id:
        links["event"] = f"/v1/events/{event_id}"
    return links


def _event_data(record: Recorded, position: int, **extra: Any) -> dict[str, Any]:
    return {
        "negotiation_id": record.negotiation_id,
        "event_id": record.event_id,
        "version": record.originator_version,
        "position": position,
        "links": _links(record.negotiation_id, record.event_id),
        **extra,
    }


def event_messages(record: Recorded, position: int, before: State | None, after: State) -> list[Message]:
    """The message for the event itself, and those its change of state calls for."""
    messages = [
        _message(
            f"event.{record.event_id}",
            f"event.{record.event.type}",
            record.recorded_at,
            record.negotiation_id,
            position,
            _event_data(record, position, type=record.event.type, occurred_on=record.event.occurred_on.isoformat()),
        )
    ]
    messages += _derived(record, position, before, after)
    return messages


def _derived(record: Recorded, position: int, before: State | None, after: State) -> list[Message]:
    # Judged on the day the event was recorded (or the day it happened, if later): the same event
    # always derives the same messages, whenever the relay or a replay gets to it.
    as_of = max(record.recorded_at.date(), record.event.occurred_on)
    now_view = view(after, as_of, _FAR_FUTURE)
    then_view = view(before, as_of, _FAR_FUTURE) if before is not None else None
    found: list[Message] = []

    def derived(kind: str, **data: Any) -> None:
        found.append(_message(f"{kind}.{record.event_id}", kind, record.recorded_at, record.negotiation_id, position,
                              _event_data(record, position, **data)))

    truce_now = truce(now_view)
    truce_then = truce(then_view) if then_view else None
    if (
        truce_then is not None
        and truce_now.truce_id == truce_then.truce_id
        and truce_now.expires_on and truce_then.expires_on
        and truce_now.expires_on > truce_then.expires_on
    ):
        derived("truce.extended", truce_id=truce_now.truce_id, expires_on=truce_now.expires_on.isoformat(),
                previous_expires_on=truce_then.expires_on.isoformat())

    totals_now = _totals(tariff_schedule(now_view).directions)
    totals_then = _totals(tariff_schedule(then_view).directions) if then_view else {}
    changed = {
        direction: {"before": totals_then.get(direction, 0.0), "after": total}
        for direction, total in totals_now.items()
        if totals_then.get(direction, 0.0) != total
    }
    changed.update({d: {"before": t, "after": 0.0} for d, t in totals_then.items() if d not in totals_now and t})
    if changed:
        derived("tariff.changed", as_of=as_of.isoformat(), directions=changed)

    statuses_then = {i.issue_id: i.status for i in issues(then_view).issues} if then_view else {}
    for issue in issues(now_view).issues:
        if issue.issue_id in statuses_then and statuses_then[issue.issue_id] != issue.status:
            found.append(
                _message(
                    f"issue.status_changed.{record.event_id}.{issue.issue_id}", "issue.status_changed", record.recorded_at,
                    record.negotiation_id, position,
                    _event_data(record, position, issue_id=issue.issue_id, before=statuses_then[issue.issue_id], after=issue.status),
                )
            )
    return found


def _totals(directions: Iterable[Any]) -> dict[str, float]:
    return {f"{d.imposed_by}->{d.applies_to}": d.total_additional_pct for d in directions}


def calendar_messages(state: State, position: int, today: dt.date, warn_days: Sequence[int], now: dt.datetime) -> list[Message]:
    """Deadlines approaching or passed, truces lapsed: fired by the clock, once per deadline and due date."""
    nid = state.negotiation_id or ""
    answer = deadlines(view(state, today, _FAR_FUTURE))
    found: list[Message] = []
    thresholds = sorted(set(warn_days))
    for deadline in answer.upcoming:
        left = deadline.days_remaining
        if left is None:
            continue
        # the tightest threshold reached, so a late start sends one warning, not all of them
        reached = [d for d in thresholds if left <= d]
        if reached:
            days = reached[0]
            found.append(_message(
                f"deadline.approaching.{nid}.{deadline.deadline_id}.{deadline.due_on}.{days}d", "deadline.approaching", now, nid,
                position, {"negotiation_id": nid, "deadline_id": deadline.deadline_id, "due_on": deadline.due_on.isoformat(),
                           "ends": deadline.ends, "lapses_on": deadline.lapses_on.isoformat(),
                           "days_remaining": left, "threshold_days": days, "links": _links(nid)},
            ))
    for deadline in answer.passed:
        if deadline.resolved_on is None and today - deadline.due_on <= dt.timedelta(days=7):
            found.append(_message(
                f"deadline.passed.{nid}.{deadline.deadline_id}.{deadline.due_on}", "deadline.passed", now, nid, position,
                {"negotiation_id": nid, "deadline_id": deadline.deadline_id, "due_on": deadline.due_on.isoformat(),
                 "ends": deadline.ends, "lapses_on": deadline.lapses_on.isoformat(), "links": _links(nid)},
            ))
    current = truce(view(state, today, _FAR_FUTURE))
    if current.status == "lapsed" and current.expires_on and today - current.expires_on <= dt.timedelta(days=7):
        found.append(_message(
            f"truce.lapsed.{nid}.{current.truce_id}.{current.expires_on}", "truce.lapsed", now, nid, position,
            {"negotiation_id": nid, "truce_id": current.truce_id, "expired_on": current.expires_on.isoformat(),
             "lapses_on": current.lapses_on.isoformat() if current.lapses_on else None, "ends": current.ends, "links": _links(nid)},
        ))
    return found


def operational_message(type_: str, id_: str, now: dt.datetime, data: dict[str, Any]) -> Message:
    return _message(id_, type_, now, None, 0, data)


def matches(subscription: dict[str, Any], message: Message) -> bool:
    """A subscription's event_types are exact types or prefixes ending in '*'; empty lists match all."""
    types: list[str] = subscription["event_types"]
    negotiations: list[str] = subscription["negotiations"]
    if negotiations and message.negotiation_id not in negotiations:
        return False
    return not types or any(message.type == t or (t.endswith("*") and message.type.startswith(t[:-1])) for t in types)
