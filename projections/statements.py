"""The `statements` read model: what was said on or before as_of, by whom, kept side by side."""

from __future__ import annotations

import datetime as dt

from msgspec import Struct

from events.payloads import Claim, Person, Source, Stance, StatementMade
from projections import registry
from projections.state import View, in_world_order


class StatementView(Struct, frozen=True, kw_only=True):
    event_id: str
    occurred_on: dt.date
    speaker: Person
    quote: str | None
    paraphrase: str | None
    stance: Stance | None
    about: tuple[str, ...]
    topics: tuple[str, ...]
    claim: Claim | None
    source: Source | None
    because: tuple[str, ...]


class StatementsView(Struct, frozen=True, kw_only=True):
    statements: tuple[StatementView, ...]


def statements(
    view: View, *, speaker: str | None = None, party: str | None = None, topic: str | None = None
) -> StatementsView:
    """Statements in world order; `speaker` matches the name case-blind, `topic` a topic or an `about` id."""
    found = []
    for fact in in_world_order(view, StatementMade):
        said = fact.event
        if speaker is not None and said.speaker.name.casefold() != speaker.casefold():
            continue
        if party is not None and said.speaker.party != party:
            continue
        if topic is not None and topic not in said.topics and topic not in said.about:
            continue
        found.append(
            StatementView(
                event_id=fact.event_id,
                occurred_on=said.occurred_on,
                speaker=said.speaker,
                quote=said.quote,
                paraphrase=said.paraphrase,
                stance=said.stance,
                about=said.about,
                topics=said.topics,
                claim=said.claim,
                source=said.source,
                because=fact.because,
            )
        )
    return StatementsView(statements=tuple(found))


registry.register(registry.ReadModel(name="statements", folds=(StatementMade,)))  # its own route, filtered and paged
