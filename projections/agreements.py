"""The `agreements` read model: the agreements reached by as_of, each as last reported."""

from __future__ import annotations

import datetime as dt

from msgspec import Struct

from events.payloads import AgreementReached, Organisation
from projections import registry
from projections.state import Fact, View, because_of, first_given, scope


class AgreementView(Struct, frozen=True, kw_only=True):
    agreement_id: str
    title: str
    # party codes, or the companies, investors and bodies that are party to it
    parties: tuple[str | Organisation, ...]
    terms: str | None
    # when it was first reported reached, and signed (when the record says)
    reached_on: dt.date
    signed_on: dt.date | None
    because: tuple[str, ...]


class AgreementsView(Struct, frozen=True, kw_only=True):
    agreements: tuple[AgreementView, ...]


def agreements(view: View) -> AgreementsView:
    """Every agreement reached by as_of, in the order they were reached; later reports fill in or update fields."""
    seen = scope(view)
    found = []
    for agreement_id, index in list(seen.entities.of("agreements").items()):
        facts: list[Fact[AgreementReached]] = seen.world_order(index)
        if not facts:
            continue
        latest_first = facts[::-1]
        found.append(
            AgreementView(
                agreement_id=agreement_id,
                title=latest_first[0].event.title,
                parties=first_given(latest_first, "parties") or (),
                terms=first_given(latest_first, "terms"),
                reached_on=facts[0].occurred_on,
                signed_on=first_given(latest_first, "signed_on"),
                because=because_of(*(f.because for f in facts)),
            )
        )
    return AgreementsView(agreements=tuple(sorted(found, key=lambda a: (a.reached_on, a.agreement_id))))


registry.register(registry.ReadModel(
    name="agreements",
    folds=(AgreementReached,),
    answer=lambda view, _: agreements(view),
    answer_type=AgreementsView,
    entity=lambda event: event.agreement_id,
    id_field="agreement_id",
    listed=lambda part: part["agreements"],
    items=lambda part: part.agreements,
    order=70,
))
