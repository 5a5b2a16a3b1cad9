"""The `claims` read model: claims by subject, disputed side by side, settled by the facts that came later."""

from __future__ import annotations

import datetime as dt

from events.payloads import (
    Claim,
    DeadlineExtended,
    DeadlineSet,
    EventRetracted,
    MeasureChanged,
    MeasureStatus,
    NegotiationOpened,
    Person,
    Source,
    StatementMade,
    TruceAgreed,
    TruceEnded,
    TruceExtended,
)
from projections import fold, view
from projections.claims import SubjectView, claims
from tests.unit import recording

NEGOTIATION = "us-china-trade-2025"
D = dt.date.fromisoformat
START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
ANADOLU = Source(name="Anadolu Agency", kind="wire", published_at=D("2025-07-29"), reliability="B", credibility=2)
AGROLATAM = Source(name="AgroLatam", kind="other", published_at=D("2025-07-27"), reliability="C", credibility=3)
WHITE_HOUSE = Source(name="The White House", kind="official", reliability="A", credibility=1)
LI = Person(name="Li Chenggang", role="China International Trade Representative", party="CN")
BESSENT = Person(name="Scott Bessent", role="Treasury Secretary", party="US")
GENEVA = ("geneva-truce", "truce-expiry")


class Stream(recording.Stream):
    def __init__(self) -> None:
        super().__init__(NEGOTIATION, START, recorded_by="editor")

    def subject(self, subject: str, as_of: str = "2026-01-01", known_at: dt.datetime = NOW) -> SubjectView:
        found = [s for s in claims(view(fold(self.records), D(as_of), known_at)).subjects if s.subject == subject]
        assert len(found) == 1, found
        return found[0]


def said(speaker: Person, on: str, subject: str, value: str, source: Source = ANADOLU, about: tuple[str, ...] = GENEVA) -> StatementMade:
    return StatementMade(
        occurred_on=D(on), speaker=speaker, paraphrase=f"{speaker.name}: {subject} is {value}", about=about,
        claim=Claim(subject=subject, value=value), source=source,
    )


def tariff(measure_id: str, rate: float, *, status: MeasureStatus = "in_force", until_deadline: str | None = None) -> MeasureChanged:
    return MeasureChanged(
        occurred_on=D("2025-05-12"), source=WHITE_HOUSE, measure_id=measure_id, kind="tariff", status=status,
        imposed_by="US", applies_to="CN", legal_basis="IEEPA", rate_pct=rate, effective_from=D("2025-05-14"),
        until_deadline=until_deadline,
    )


def geneva() -> Stream:
    """The Geneva truce: the reciprocal tariff's 34% suspended to 10% until the 12 August deadline."""
    stream = Stream()
    stream.add(NegotiationOpened(occurred_on=D("2025-02-01"), source=WHITE_HOUSE, title="US-China", parties=("US", "CN")))
    stream.add(
        MeasureChanged(
            occurred_on=D("2025-03-03"), source=WHITE_HOUSE, measure_id="us-ieepa-fentanyl-cn", kind="tariff",
            status="in_force", imposed_by="US", applies_to="CN", legal_basis="IEEPA", rate_pct=20,
            effective_from=D("2025-03-04"),
        )
    )
    stream.add(tariff("us-ieepa-reciprocal-cn", 125))
    stream.add(DeadlineSet(occurred_on=D("2025-05-12"), source=WHITE_HOUSE, deadline_id="truce-expiry", title="Truce expiry", due_on=D("2025-08-12")))
    stream.add(
        TruceAgreed(
            occurred_on=D("2025-05-12"), source=WHITE_HOUSE, truce_id="geneva-truce", parties=("US", "CN"),
            effective_from=D("2025-05-14"), deadline_id="truce-expiry", suspends=("us-ieepa-reciprocal-cn",),
        )
    )
    return stream


# --- truce.extension: the Stockholm example -----------------------------------------------------


def test_stockholm_claims_go_single_then_disputed_then_confirmed_by_the_extension() -> None:
    stream = geneva()
    li = stream.add(said(LI, "2025-07-29", "truce.extension", "agreed"))
    li_known = stream.clock
    bessent = stream.add(said(BESSENT, "2025-07-29", "truce.extension", "not_agreed"))
    bessent_known = stream.clock
    order = stream.add(DeadlineExtended(occurred_on=D("2025-08-11"), source=WHITE_HOUSE, deadline_id="truce-expiry", due_on=D("2025-11-10")))
    extended = stream.add(
        TruceExtended(occurred_on=D("2025-08-11"), source=WHITE_HOUSE, truce_id="geneva-truce", deadline_id="truce-expiry")
    )

    single = stream.subject("truce.extension", known_at=li_known)
    assert (single.status, [c.event_id for c in single.values], single.settled_by) == ("single", [li], None)

    disputed = stream.subject("truce.extension", known_at=bessent_known)
    assert disputed.status == "disputed"
    assert [(c.event_id, c.speaker, c.party, c.value, c.verdict) for c in disputed.values] == [
        (li, "Li Chenggang", "CN", "agreed", None),
        (bessent, "Scott Bessent", "US", "not_agreed", None),
    ]
    assert disputed.settled_by is None and disputed.because == (li, bessent)

    confirmed = stream.subject("truce.extension")
    assert (confirmed.status, confirmed.settled_by, confirmed.settled_on, confirmed.settled_value) == (
        "confirmed", order, D("2025-08-11"), "agreed",
    )
    assert {c.event_id: c.verdict for c in confirmed.values} == {li: "confirmed", bessent: "contradicted"}
    assert confirmed.because == (li, bessent, order, extended)


def test_the_extension_settles_claims_only_from_the_day_it_occurred() -> None:
    stream = geneva()
    stream.add(said(LI, "2025-07-29", "truce.extension", "agreed"))
    stream.add(said(BESSENT, "2025-07-29", "truce.extension", "not_agreed"))
    stream.add(TruceExtended(occurred_on=D("2025-08-11"), source=WHITE_HOUSE, truce_id="geneva-truce", deadline_id="truce-expiry"))
    assert stream.subject("truce.extension", as_of="2025-08-10").status == "disputed"
    assert stream.subject("truce.extension", as_of="2025-08-11").status == "confirmed"
    assert [s.subject for s in claims(view(fold(stream.records), D("2025-07-28"), NOW)).subjects] == []


def test_a_retracted_extension_unsettles_the_claims_from_the_retraction_on() -> None:
    stream = geneva()
    stream.add(said(LI, "2025-07-29", "truce.extension", "agreed"))
    stream.add(said(BESSENT, "2025-07-29", "truce.extension", "not_agreed"))
    extended = stream.add(TruceExtended(occurred_on=D("2025-08-11"), source=WHITE_HOUSE, truce_id="geneva-truce"))
    before = stream.clock
    stream.add(EventRetracted(occurred_on=D("2025-08-12"), target=extended, reason="recorded against the wrong truce"))
    assert stream.subject("truce.extension", known_at=before).settled_by == extended
    assert stream.subject("truce.extension").status == "disputed"


def test_an_extension_before_the_claims_or_of_another_deadline_settles_nothing() -> None:
    stream = geneva()
    stream.add(DeadlineExtended(occurred_on=D("2025-06-19"), source=WHITE_HOUSE, deadline_id="truce-expiry", due_on=D("2025-09-01")))
    stream.add(DeadlineSet(occurred_on=D("2025-01-20"), source=WHITE_HOUSE, deadline_id="tiktok", title="TikTok", due_on=D("2025-04-05")))
    stream.add(said(LI, "2025-07-29", "truce.extension", "agreed"))
    stream.add(DeadlineExtended(occurred_on=D("2025-08-01"), source=WHITE_HOUSE, deadline_id="tiktok", due_on=D("2025-09-17")))
    assert stream.subject("truce.extension").status == "single"


def test_a_truce_that_ends_contradicts_a_claimed_extension() -> None:
    stream = geneva()
    li = stream.add(said(LI, "2025-07-29", "truce.extension", "agreed"))
    ended = stream.add(TruceEnded(occurred_on=D("2025-08-05"), source=WHITE_HOUSE, truce_id="geneva-truce"))
    subject = stream.subject("truce.extension")
    assert (subject.status, subject.settled_by, subject.settled_value) == ("contradicted", ended, "not_agreed")
    assert subject.values[0].event_id == li and subject.values[0].verdict == "contradicted"


# --- <party>.tariff_on_lapse_pct: the seed article's 145% -----------------------------------------


def test_the_seed_articles_145_on_lapse_is_contradicted_by_the_34_that_returns() -> None:
    stream = geneva()
    back = stream.add(tariff("us-ieepa-reciprocal-cn", 34))
    suspended = stream.add(tariff("us-ieepa-reciprocal-cn", 10, status="suspended", until_deadline="truce-expiry"))
    article = stream.add(said(Person(name="AgroLatam (unsigned article)"), "2025-07-27", "us.tariff_on_lapse_pct", "145", AGROLATAM))
    subject = stream.subject("us.tariff_on_lapse_pct")
    # Only the suspended reciprocal rate returns; the 20% fentanyl tariff stays either way.
    assert (subject.status, subject.settled_value, subject.settled_by, subject.settled_on) == (
        "contradicted", "34", back, D("2025-07-27"),
    )
    # the claim, the 34% that returns, and the suspension that ends with the truce's deadline
    assert subject.because[:3] == (article, back, suspended)
    fentanyl = stream.records[1].event_id
    assert fentanyl not in subject.because
    assert subject.values[0].verdict == "contradicted" and subject.values[0].source == AGROLATAM


def test_a_lapse_figure_that_matches_the_suspended_rates_is_confirmed_and_disputes_the_other() -> None:
    stream = geneva()
    stream.add(tariff("us-ieepa-reciprocal-cn", 34))
    stream.add(tariff("us-ieepa-reciprocal-cn", 10, status="suspended", until_deadline="truce-expiry"))
    wrong = stream.add(said(Person(name="AgroLatam (unsigned article)"), "2025-07-27", "us.tariff_on_lapse_pct", "145", AGROLATAM))
    right = stream.add(said(BESSENT, "2025-07-28", "us.tariff_on_lapse_pct", "34%"))
    subject = stream.subject("us.tariff_on_lapse_pct")
    assert subject.status == "confirmed"
    assert {c.event_id: c.verdict for c in subject.values} == {wrong: "contradicted", right: "confirmed"}


def test_a_lapse_claim_without_a_running_truce_stays_unsettled() -> None:
    stream = geneva()
    stream.add(said(BESSENT, "2025-04-01", "us.tariff_on_lapse_pct", "145"))
    assert stream.subject("us.tariff_on_lapse_pct").status == "single"


# --- subjects no resolver reads -----------------------------------------------------------------


def test_other_subjects_stay_single_or_disputed_and_one_voice_changing_its_mind_is_no_dispute() -> None:
    stream = geneva()
    stream.add(said(BESSENT, "2025-07-01", "trump-xi.summit", "possible"))
    stream.add(said(BESSENT, "2025-07-02", "trump-xi.summit", "unlikely"))
    assert stream.subject("trump-xi.summit").status == "single"
    stream.add(said(LI, "2025-07-03", "trump-xi.summit", "unlikely"))
    assert stream.subject("trump-xi.summit").status == "single"
    stream.add(said(LI, "2025-07-04", "trump-xi.summit", "planned", source=AGROLATAM))
    subject = stream.subject("trump-xi.summit")
    assert subject.status == "disputed" and len(subject.values) == 4 and subject.settled_by is None


def test_the_status_filter_keeps_matching_subjects_and_statements_without_claims_are_left_out() -> None:
    stream = geneva()
    stream.add(StatementMade(occurred_on=D("2025-07-01"), speaker=LI, paraphrase="Talks were constructive."))
    stream.add(said(LI, "2025-07-29", "truce.extension", "agreed"))
    stream.add(said(BESSENT, "2025-07-29", "truce.extension", "not_agreed"))
    stream.add(said(BESSENT, "2025-07-30", "trump-xi.summit", "possible"))
    seen = view(fold(stream.records), D("2026-01-01"), NOW)
    assert [s.subject for s in claims(seen).subjects] == ["truce.extension", "trump-xi.summit"]
    assert [s.subject for s in claims(seen, "disputed").subjects] == ["truce.extension"]
    assert [s.subject for s in claims(seen, "confirmed").subjects] == []
