"""The `issues` read model: each open question between the parties with its status history and positions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Literal

from msgspec import Struct

from events.payloads import (
    ConcessionMade,
    DemandMade,
    IssueRaised,
    IssueStatus,
    IssueUpdated,
)
from projections import registry
from projections.index import Sorted
from projections.state import Fact, Scope, View, because_of, entity_step, scope


class StatusChange(Struct, frozen=True, kw_only=True):
    status: IssueStatus
    occurred_on: dt.date
    event_id: str


class Position(Struct, frozen=True, kw_only=True):
    kind: Literal["demand", "concession"]
    by: str
    to: str | None
    text: str
    occurred_on: dt.date
    event_id: str


class IssueView(Struct, frozen=True, kw_only=True):
    issue_id: str
    title: str | None
    category: str | None
    status: IssueStatus
    text: str | None
    history: tuple[StatusChange, ...]
    positions: tuple[Position, ...]
    because: tuple[str, ...]


class IssuesView(Struct, frozen=True, kw_only=True):
    issues: tuple[IssueView, ...]


@dataclasses.dataclass
class _Issue:
    title: str | None = None
    category: str | None = None
    text: str | None = None
    history: list[StatusChange] = dataclasses.field(default_factory=list)
    positions: list[Position] = dataclasses.field(default_factory=list)
    because: list[tuple[str, ...]] = dataclasses.field(default_factory=list)


def _apply(issue: _Issue, fact: Fact[IssueRaised | IssueUpdated | DemandMade | ConcessionMade]) -> None:
    event = fact.event
    issue.because.append(fact.because)
    match event:
        case IssueRaised() | IssueUpdated():
            issue.title = event.title or issue.title
            issue.text = event.text or issue.text
            if isinstance(event, IssueRaised):
                issue.category = event.category
            if event.status is not None and (not issue.history or issue.history[-1].status != event.status):
                issue.history.append(
                    StatusChange(status=event.status, occurred_on=event.occurred_on, event_id=fact.event_id)
                )
        case DemandMade() | ConcessionMade():
            issue.positions.append(
                Position(
                    kind="demand" if isinstance(event, DemandMade) else "concession",
                    by=event.by,
                    to=event.to,
                    text=event.text,
                    occurred_on=event.occurred_on,
                    event_id=fact.event_id,
                )
            )


def _issue(issue_id: str, facts: list[Fact[IssueRaised | IssueUpdated | DemandMade | ConcessionMade]]) -> IssueView:
    issue = _Issue()
    for fact in facts:
        _apply(issue, fact)
    return IssueView(
        issue_id=issue_id,
        title=issue.title,
        category=issue.category,
        # an issue only talked about in demands or concessions is open
        status=issue.history[-1].status if issue.history else "open",
        text=issue.text,
        history=tuple(issue.history),
        positions=tuple(issue.positions),
        because=because_of(*issue.because),
    )


def _known_issue(seen: Scope, issue_id: str, index: Sorted) -> IssueView | None:
    facts = seen.world_order(index)
    return _issue(issue_id, facts) if facts else None


def issues(view: View) -> IssuesView:
    seen = scope(view)
    found = (
        entity_step(seen, "issues", issue_id, functools.partial(_known_issue, seen, issue_id, index))
        for issue_id, index in sorted(seen.entities.of("issues").items())
    )
    return IssuesView(issues=tuple(issue for issue in found if issue is not None))


registry.register(registry.ReadModel(
    name="issues",
    folds=(IssueRaised, IssueUpdated, DemandMade, ConcessionMade),
    answer=lambda view, _: issues(view),
    answer_type=IssuesView,
    entity=lambda event: event.issue_id,  # None: a demand or concession about a measure, not an issue
    id_field="issue_id",
    listed=lambda part: part["issues"],
    items=lambda part: part.issues,
    order=50,
))
