"""The `claims` read model: structured claims by subject, disputed side by side, settled by later facts.

A statement may carry a claim `{subject, value}`. Per subject the claims are `single` (every voice, a
speaker as reported by one source, holds the same value by its latest claim), `disputed` (different
speakers or sources hold different values), or, once the record settles the subject, `confirmed`
(some claim matched what the record shows) or `contradicted` (none did). Only subjects a resolver
understands can be settled:

- `truce.extension`: a `truce_extended` or `deadline_extended` (for the truce's deadline) on or after
  the first claim settles it as `agreed`; a `truce_ended` first settles it as `not_agreed`.
- `<party>.tariff_on_lapse_pct`: the party's rate that returns when the truce runs out, as the record
  stood on the claim's date: the measures that truce suspends, summed, on the day after it expires.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Literal

from msgspec import Struct

from events.payloads import (
    DeadlineExtended,
    Source,
    StatementMade,
    TruceEnded,
    TruceExtended,
)
from projections import registry
from projections.state import Fact, View, because_of, in_world_order
from projections.state import view as view_at
from projections.tariffs import tariff_schedule
from projections.truce import truces

ClaimStatus = Literal["single", "disputed", "confirmed", "contradicted"]
CLAIM_STATUSES: tuple[ClaimStatus, ...] = ("single", "disputed", "confirmed", "contradicted")
Verdict = Literal["confirmed", "contradicted"]


class ClaimView(Struct, frozen=True, kw_only=True):
    event_id: str
    speaker: str
    party: str | None
    value: str
    occurred_on: dt.date
    source: Source | None
    # what the record says of this value; None while unsettled or when the value is not one a resolver reads
    verdict: Verdict | None
    because: tuple[str, ...]


class SubjectView(Struct, frozen=True, kw_only=True):
    subject: str
    status: ClaimStatus
    values: tuple[ClaimView, ...]
    settled_by: str | None = None
    # the settling event's date, or the claim's own date when the record already settled it then
    settled_on: dt.date | None = None
    settled_value: str | None = None
    because: tuple[str, ...]


class ClaimsView(Struct, frozen=True, kw_only=True):
    subjects: tuple[SubjectView, ...]


Said = Fact[StatementMade]


@dataclasses.dataclass(frozen=True)
class Settlement:
    """What the record settled a subject to, the event that did, and each claim's verdict."""

    value: str
    settled_by: str
    settled_on: dt.date
    because: tuple[str, ...]
    verdicts: dict[str, Verdict | None]


Resolver = Callable[[View, Sequence[Said], re.Match[str]], Settlement | None]


# --- truce.extension ---------------------------------------------------------------------------

_AFFIRMS = frozenset({"agreed", "extended", "likely", "expected", "yes", "agreed_in_principle"})
_DENIES = frozenset({"not_agreed", "not_extended", "unlikely", "rejected", "no", "ended"})


def _extension_verdict(claimed: str, settled: str) -> Verdict | None:
    if claimed in _AFFIRMS:
        return "confirmed" if settled == "agreed" else "contradicted"
    if claimed in _DENIES:
        return "contradicted" if settled == "agreed" else "confirmed"
    return None


def _truce_extension(view: View, said: Sequence[Said], _: re.Match[str]) -> Settlement | None:
    # The truces and deadlines the statements are about; none named: every truce.
    named = {i for f in said for i in f.event.about}
    known = truces(view)
    about = [t for t in known if named & {t.truce_id, t.deadline_id}] if named else known
    ids = named | {i for t in about for i in (t.truce_id, t.deadline_id) if i}
    first = said[0].occurred_on
    settling = [
        f
        for f in in_world_order(view, TruceExtended, TruceEnded, DeadlineExtended)
        if f.occurred_on >= first
        and (getattr(f.event, "truce_id", None) in ids or getattr(f.event, "deadline_id", None) in ids)
    ]
    if not settling:
        return None
    head = settling[0]
    value = "not_agreed" if isinstance(head.event, TruceEnded) else "agreed"
    # What else settled it that day the same way (an executive order and the joint statement, say).
    same = [f for f in settling if f.occurred_on == head.occurred_on and isinstance(f.event, TruceEnded) == (value != "agreed")]
    return Settlement(
        value=value,
        settled_by=head.event_id,
        settled_on=head.occurred_on,
        because=because_of(*(f.because for f in same)),
        verdicts={f.event_id: _extension_verdict(f.event.claim.value, value) for f in said if f.event.claim},
    )


# --- <party>.tariff_on_lapse_pct ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _LapseFigure:
    pct: float
    because: tuple[str, ...]


def _lapse_figure(view: View, party: str, on: dt.date) -> _LapseFigure | None:
    """The party's suspended rates that return when the truce runs out, as the record stood on `on`."""
    seen = view_at(view.state, on, view.known_at)
    suspended = {t.truce_id: set(t.suspends) for t in truces(seen)}
    for direction in tariff_schedule(seen).directions:
        lapse = direction.on_truce_lapse
        if direction.imposed_by != party or lapse is None:
            continue
        returning = [m for m in lapse.measures if m.measure_id in suspended.get(lapse.truce_id, set())]
        if returning:
            return _LapseFigure(
                pct=sum(m.rate_pct or 0.0 for m in returning), because=because_of(*(m.because for m in returning))
            )
    return None


def _number(value: str) -> float | None:
    try:
        return float(value.strip().removesuffix("%"))
    except ValueError:
        return None


def _pct(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _tariff_on_lapse(view: View, said: Sequence[Said], found: re.Match[str]) -> Settlement | None:
    party = found.group("party").upper()
    figures: dict[dt.date, _LapseFigure | None] = {}
    verdicts: dict[str, Verdict | None] = {}
    for f in said:
        on = f.occurred_on
        if on not in figures:
            figures[on] = _lapse_figure(view, party, on)
        figure, claimed = figures[on], _number(f.event.claim.value) if f.event.claim else None
        if figure is None or claimed is None:
            verdicts[f.event_id] = None
        else:
            verdicts[f.event_id] = "confirmed" if abs(claimed - figure.pct) < 1e-9 else "contradicted"
    # The subject stands as the record did on the latest claim's date.
    latest = said[-1].occurred_on
    figure = figures[latest]
    if figure is None:
        return None
    return Settlement(
        value=_pct(figure.pct), settled_by=figure.because[0], settled_on=latest, because=figure.because, verdicts=verdicts
    )


RESOLVERS: tuple[tuple[re.Pattern[str], Resolver], ...] = (
    (re.compile(r"^truce\.extension$"), _truce_extension),
    (re.compile(r"^(?P<party>[a-z][a-z0-9_-]{0,15})\.tariff_on_lapse_pct$"), _tariff_on_lapse),
)


# --- the fold ----------------------------------------------------------------------------------


def _voice(fact: Said) -> tuple[str, str]:
    """Who holds a claim: the speaker as reported by one source (registered id, else name)."""
    source = fact.event.source
    return fact.event.speaker.name.casefold(), (source.id or source.name.casefold()) if source else ""


def _disputed(said: Sequence[Said]) -> bool:
    """Different speakers or sources hold different values; a voice's latest claim is the one it holds."""
    held = {_voice(f): f.event.claim.value for f in said if f.event.claim}
    return len(set(held.values())) > 1


def _settle(view: View, subject: str, said: Sequence[Said]) -> Settlement | None:
    for pattern, resolver in RESOLVERS:
        found = pattern.match(subject)
        if found:
            settlement = resolver(view, said, found)
            # A settlement that judges none of the values says nothing about this subject's claims.
            if settlement is not None and any(settlement.verdicts.values()):
                return settlement
            return None
    return None


def _subject(view: View, subject: str, said: Sequence[Said]) -> SubjectView:
    settlement = _settle(view, subject, said)
    verdicts = settlement.verdicts if settlement else {}
    values = tuple(
        ClaimView(
            event_id=f.event_id,
            speaker=f.event.speaker.name,
            party=f.event.speaker.party,
            value=f.event.claim.value,
            occurred_on=f.occurred_on,
            source=f.event.source,
            verdict=verdicts.get(f.event_id),
            because=f.because,
        )
        for f in said
        if f.event.claim
    )
    claimed = because_of(*(f.because for f in said))
    if settlement is None:
        return SubjectView(
            subject=subject, status="disputed" if _disputed(said) else "single", values=values, because=claimed
        )
    return SubjectView(
        subject=subject,
        status="confirmed" if "confirmed" in verdicts.values() else "contradicted",
        values=values,
        settled_by=settlement.settled_by,
        settled_on=settlement.settled_on,
        settled_value=settlement.value,
        because=because_of(claimed, settlement.because),
    )


def claims(view: View, status: ClaimStatus | None = None) -> ClaimsView:
    """Claims made by as_of, grouped by subject in the world order of each subject's first claim."""
    by_subject: dict[str, list[Said]] = {}
    for fact in in_world_order(view, StatementMade):
        if fact.event.claim is not None:
            by_subject.setdefault(fact.event.claim.subject, []).append(fact)
    found = (_subject(view, subject, said) for subject, said in by_subject.items())
    return ClaimsView(subjects=tuple(s for s in found if status in (None, s.status)))


registry.register(registry.ReadModel(name="claims", folds=(StatementMade,)))  # its own route, by subject
