"""The `issues` read model: each open question between the parties with its status history and positions."""

from __future__ import annotations

import dataclasses
import datetime as dt
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
from projections.state import Fact, View, because_of, scope


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


def issues(view: View) -> IssuesView:
    seen = scope(view)
    found: dict[str, _Issue] = {}
    for issue_id, index in sorted(seen.entities.of("issues").items()):
        facts = seen.world_order(index)
        if not facts:
            continue
        issue = found[issue_id] = _Issue()
        for fact in facts:
            _apply(issue, fact)
    return IssuesView(
        issues=tuple(
            IssueView(
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
            for issue_id, issue in sorted(found.items())
        )
    )


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
