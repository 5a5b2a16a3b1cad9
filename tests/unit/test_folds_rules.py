"""One test per rule of the folds: the two time axes, which change applies, truces, and each read model."""

from __future__ import annotations

import datetime as dt

from events.payloads import (
    ConcessionMade,
    DeadlineExtended,
    DeadlineResolved,
    DeadlineSet,
    DemandMade,
    EventCorrected,
    EventRetracted,
    IssueRaised,
    IssueUpdated,
    MeasureChanged,
    MeasureStatus,
    Person,
    RoundHeld,
    RoundScheduled,
    StatementMade,
    TruceAgreed,
    TruceEnded,
)
from projections import (
    State,
    TariffDirection,
    deadlines,
    evolve,
    fold,
    issues,
    measures,
    rounds,
    statements,
    tariff_schedule,
    truce,
    view,
)
from tests.unit import recording

NEGOTIATION = "rules"
D = dt.date.fromisoformat
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class Stream(recording.Stream):
    def __init__(self, start: dt.datetime = START) -> None:
        super().__init__(NEGOTIATION, start)

    @property
    def state(self) -> State:
        return fold(self.records)


def tariff(
    announced: str,
    rate: float | None,
    *,
    effective: str | None = None,
    until: str | None = None,
    until_deadline: str | None = None,
    status: MeasureStatus = "in_force",
    measure_id: str = "duty",
    legal_basis: str = "IEEPA",
) -> MeasureChanged:
    return MeasureChanged(
        occurred_on=D(announced),
        measure_id=measure_id,
        kind="tariff",
        status=status,
        imposed_by="US",
        applies_to="CN",
        legal_basis=legal_basis,
        rate_pct=rate,
        effective_from=D(effective) if effective else None,
        effective_until=D(until) if until else None,
        until_deadline=until_deadline,
    )


def deadline(announced: str, due: str, deadline_id: str = "expiry") -> DeadlineSet:
    return DeadlineSet(occurred_on=D(announced), deadline_id=deadline_id, title="Truce expiry", due_on=D(due))


def extension(announced: str, due: str, deadline_id: str = "expiry") -> DeadlineExtended:
    return DeadlineExtended(occurred_on=D(announced), deadline_id=deadline_id, due_on=D(due))


def us_on_cn(
    state: State, as_of: str, known_at: dt.datetime = LATER, legal_basis: str | None = None
) -> TariffDirection:
    (direction,) = tariff_schedule(view(state, D(as_of), known_at), legal_basis=legal_basis).directions
    return direction


def rates(direction: TariffDirection) -> dict[str, float | None]:
    return {m.measure_id: m.rate_pct for m in direction.measures}


# --- known_at: the recording axis --------------------------------------------------------


def test_events_recorded_after_known_at_are_not_used() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10), at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    stream.add(tariff("2025-02-01", 20), at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))

    assert rates(us_on_cn(stream.state, "2025-03-01", known_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC))) == {"duty": 10}
    assert rates(us_on_cn(stream.state, "2025-03-01", known_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))) == {"duty": 20}


def test_correction_changes_answers_only_from_when_it_was_recorded() -> None:
    stream = Stream()
    wrong = stream.add(tariff("2025-01-01", 15))
    before = stream.clock
    fixed = stream.add(EventCorrected(occurred_on=D("2025-06-01"), target=wrong, replacement=tariff("2025-01-01", 10)))

    assert rates(us_on_cn(stream.state, "2025-03-01", known_at=before)) == {"duty": 15}
    corrected = us_on_cn(stream.state, "2025-03-01", known_at=stream.clock)
    assert rates(corrected) == {"duty": 10}
    assert corrected.measures[0].because == (wrong, fixed)


def test_retraction_drops_the_event_only_from_when_it_was_recorded() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    rumour = stream.add(tariff("2025-02-01", 50))
    before = stream.clock
    stream.add(EventRetracted(occurred_on=D("2025-06-01"), target=rumour, reason="never issued"))

    assert rates(us_on_cn(stream.state, "2025-03-01", known_at=before)) == {"duty": 50}
    assert rates(us_on_cn(stream.state, "2025-03-01", known_at=stream.clock)) == {"duty": 10}


def test_backfilled_event_changes_the_answer_for_its_own_dates() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    first_known = stream.clock
    stream.add(tariff("2025-02-01", 20, until="2025-02-28"))  # recorded later, dated earlier than "now"

    assert rates(us_on_cn(stream.state, "2025-02-15", known_at=first_known)) == {"duty": 10}
    assert rates(us_on_cn(stream.state, "2025-02-15")) == {"duty": 20}
    assert rates(us_on_cn(stream.state, "2025-03-01")) == {"duty": 10}


# --- as_of: the world axis -------------------------------------------------------------


def test_change_effective_after_as_of_is_pending_not_counted() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    raise_ = stream.add(tariff("2025-02-01", 25, effective="2025-03-01"))

    direction = us_on_cn(stream.state, "2025-02-15")

    assert direction.total_additional_pct == 10
    assert [(p.rate_pct, p.effective_from, p.because) for p in direction.pending] == [(25, D("2025-03-01"), (raise_,))]
    assert us_on_cn(stream.state, "2025-03-01").total_additional_pct == 25


def test_change_announced_after_as_of_is_not_known_on_as_of() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    stream.add(tariff("2025-03-01", 25, effective="2025-03-05"))

    direction = us_on_cn(stream.state, "2025-02-15")

    assert direction.pending == ()


def test_latest_announced_change_wins_so_a_replaced_schedule_never_applies() -> None:
    stream = Stream()
    stream.add(tariff("2025-04-02", 34, effective="2025-04-09"))
    replacing = stream.add(tariff("2025-04-08", 84, effective="2025-04-09"))

    assert [(p.rate_pct, p.because) for p in us_on_cn(stream.state, "2025-04-08").pending] == [(84, (replacing,))]
    assert rates(us_on_cn(stream.state, "2025-04-09")) == {"duty": 84}


def test_suspension_announced_today_overrides_an_older_act_due_next_month() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    stream.add(tariff("2025-01-01", 40, effective="2025-03-01"))
    stream.add(tariff("2025-02-01", 10, status="suspended", effective="2025-02-01"))

    assert rates(us_on_cn(stream.state, "2025-03-15")) == {"duty": 10}


def test_same_announcement_day_goes_to_the_later_effective_from() -> None:
    stream = Stream()
    stream.add(tariff("2025-05-12", 34, effective="2025-05-20"))
    stream.add(tariff("2025-05-12", 10, effective="2025-05-14"))

    assert rates(us_on_cn(stream.state, "2025-05-15")) == {"duty": 10}
    assert rates(us_on_cn(stream.state, "2025-05-20")) == {"duty": 34}


def test_full_tie_goes_to_the_later_recorded() -> None:
    stream = Stream()
    stream.add(tariff("2025-05-12", 34, effective="2025-05-14"))
    stream.add(tariff("2025-05-12", 10, effective="2025-05-14"))

    assert rates(us_on_cn(stream.state, "2025-05-14")) == {"duty": 10}


def test_change_past_its_effective_until_falls_back_to_the_next_winner() -> None:
    stream = Stream()
    base = stream.add(tariff("2025-01-01", 10))
    spike = stream.add(tariff("2025-02-01", 30, until="2025-02-28"))

    assert rates(us_on_cn(stream.state, "2025-02-28")) == {"duty": 30}
    after = us_on_cn(stream.state, "2025-03-01")
    assert rates(after) == {"duty": 10}
    assert after.measures[0].since == D("2025-03-01")
    assert after.measures[0].because == (base, spike)


def test_suspension_tied_to_a_deadline_ends_when_the_deadline_passes() -> None:
    stream = Stream()
    stream.add(deadline("2025-05-12", "2025-08-12"))
    stream.add(tariff("2025-05-12", 34, effective="2025-05-14"))
    stream.add(tariff("2025-05-12", 10, effective="2025-05-14", status="suspended", until_deadline="expiry"))

    assert rates(us_on_cn(stream.state, "2025-08-12")) == {"duty": 10}
    assert rates(us_on_cn(stream.state, "2025-08-13")) == {"duty": 34}


def test_deadline_extension_moves_the_suspension_from_the_day_it_occurs() -> None:
    stream = Stream()
    stream.add(deadline("2025-05-12", "2025-08-12"))
    stream.add(tariff("2025-05-12", 34, effective="2025-05-14"))
    stream.add(tariff("2025-05-12", 10, effective="2025-05-14", status="suspended", until_deadline="expiry"))
    stream.add(extension("2025-08-15", "2025-11-10"))

    assert rates(us_on_cn(stream.state, "2025-08-14")) == {"duty": 34}  # lapsed; not yet extended
    assert rates(us_on_cn(stream.state, "2025-08-15")) == {"duty": 10}
    assert rates(us_on_cn(stream.state, "2025-11-11")) == {"duty": 34}


def test_suspension_tied_to_an_unrecorded_deadline_keeps_applying() -> None:
    stream = Stream()
    stream.add(tariff("2025-05-12", 34, effective="2025-05-14"))
    stream.add(tariff("2025-05-12", 10, effective="2025-05-14", status="suspended", until_deadline="expiry"))

    assert rates(us_on_cn(stream.state, "2026-01-01")) == {"duty": 10}


def test_removed_or_invalidated_measure_counts_nothing() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    stream.add(tariff("2025-02-01", 20, measure_id="other"))
    stream.add(tariff("2025-03-01", None, status="removed"))
    stream.add(tariff("2025-03-01", None, status="invalidated", measure_id="other"))

    direction = us_on_cn(stream.state, "2025-03-01")

    assert (direction.total_additional_pct, direction.measures) == (0, ())


def test_threat_or_announcement_does_not_displace_the_rate_in_force() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    stream.add(tariff("2025-02-01", 100, status="threatened"))
    stream.add(tariff("2025-02-02", 50, status="announced"))
    stream.add(tariff("2025-02-03", 70, status="threatened", measure_id="threat-only"))

    direction = us_on_cn(stream.state, "2025-03-01")

    assert rates(direction) == {"duty": 10}
    assert direction.total_additional_pct == 10


def test_partial_suspension_counts_the_rate_still_in_force() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 34))
    stream.add(tariff("2025-02-01", 10, status="suspended"))
    stream.add(tariff("2025-02-01", None, status="suspended", measure_id="fully-suspended"))

    assert us_on_cn(stream.state, "2025-03-01").total_additional_pct == 10
    assert rates(us_on_cn(stream.state, "2025-03-01")) == {"duty": 10}


def test_legal_basis_filter_matches_case_blind_part_of_the_basis() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10, legal_basis="IEEPA (EO 14195)"))
    stream.add(tariff("2025-01-01", 25, measure_id="s301", legal_basis="Section 301"))

    assert rates(us_on_cn(stream.state, "2025-02-01", legal_basis="ieepa")) == {"duty": 10}
    assert us_on_cn(stream.state, "2025-02-01").total_additional_pct == 35


# --- truce ---------------------------------------------------------------------------


def geneva(stream: Stream) -> str:
    stream.add(deadline("2025-05-12", "2025-08-12"))
    stream.add(tariff("2025-05-12", 34, effective="2025-05-14"))
    stream.add(tariff("2025-05-12", 10, effective="2025-05-14", status="suspended", until_deadline="expiry"))
    return stream.add(
        TruceAgreed(
            occurred_on=D("2025-05-12"),
            truce_id="geneva",
            effective_from=D("2025-05-14"),
            deadline_id="expiry",
            suspends=("duty",),
        )
    )


def test_truce_goes_from_pending_to_active_to_lapsed() -> None:
    stream = Stream()
    geneva(stream)

    def status(as_of: str) -> tuple[str, int | None]:
        seen = truce(view(stream.state, D(as_of), LATER))
        return seen.status, seen.days_remaining

    assert status("2025-05-11") == ("none", None)
    assert status("2025-05-13") == ("pending", 91)
    assert status("2025-05-14") == ("active", 90)
    assert status("2025-08-12") == ("active", 0)
    assert status("2025-08-13") == ("lapsed", None)


def test_truce_ended_is_ended_even_before_its_deadline() -> None:
    stream = Stream()
    geneva(stream)
    ended = stream.add(TruceEnded(occurred_on=D("2025-06-01"), truce_id="geneva"))

    seen = truce(view(stream.state, D("2025-06-02"), LATER))

    assert (seen.status, seen.ended_on) == ("ended", D("2025-06-01"))
    assert ended in seen.because
    assert truce(view(stream.state, D("2025-05-31"), LATER)).status == "active"


def test_truce_extension_occurring_after_as_of_is_not_applied() -> None:
    stream = Stream()
    geneva(stream)
    stream.add(extension("2025-08-11", "2025-11-10"))

    assert truce(view(stream.state, D("2025-08-10"), LATER)).expires_on == D("2025-08-12")
    assert truce(view(stream.state, D("2025-08-11"), LATER)).expires_on == D("2025-11-10")


def test_on_truce_lapse_shows_the_rates_the_day_after_expiry() -> None:
    stream = Stream()
    truce_id = geneva(stream)

    lapse = us_on_cn(stream.state, "2025-06-01").on_truce_lapse

    assert lapse is not None
    assert (lapse.applies_from, lapse.total_additional_pct) == (D("2025-08-13"), 34)
    assert truce_id in lapse.because
    assert us_on_cn(stream.state, "2025-08-13").on_truce_lapse is None


# --- the other read models ---------------------------------------------------------------


def test_non_tariff_measures_show_status_with_pending_changes() -> None:
    stream = Stream()
    listing = stream.add(
        MeasureChanged(
            occurred_on=D("2025-03-04"),
            measure_id="cn-unreliable-entity-list",
            kind="entity_listing",
            status="in_force",
            imposed_by="CN",
            applies_to="US",
        )
    )
    lifting = stream.add(
        MeasureChanged(
            occurred_on=D("2025-05-12"),
            measure_id="cn-unreliable-entity-list",
            kind="entity_listing",
            status="suspended",
            imposed_by="CN",
            applies_to="US",
            effective_from=D("2025-05-14"),
        )
    )
    stream.add(tariff("2025-01-01", 10))

    (listed,) = measures(view(stream.state, D("2025-05-13"), LATER)).measures
    (suspended,) = measures(view(stream.state, D("2025-05-14"), LATER)).measures

    assert (listed.status, listed.in_force, listed.because) == ("in_force", True, (listing,))
    assert [(p.status, p.effective_from) for p in listed.pending] == [("suspended", D("2025-05-14"))]
    assert (suspended.status, suspended.in_force, suspended.since) == ("suspended", False, D("2025-05-14"))
    assert suspended.because == (lifting,)


def test_deadlines_split_into_upcoming_and_passed_with_their_extension_chain() -> None:
    stream = Stream()
    set_ = stream.add(deadline("2025-05-12", "2025-08-12"))
    first = stream.add(extension("2025-08-11", "2025-11-10"))
    stream.add(deadline("2025-01-20", "2025-04-05", deadline_id="tiktok"))
    resolved = stream.add(DeadlineResolved(occurred_on=D("2025-04-04"), deadline_id="tiktok", outcome="extended by EO"))

    seen = deadlines(view(stream.state, D("2025-09-01"), LATER))

    (upcoming,) = seen.upcoming
    assert (upcoming.deadline_id, upcoming.due_on) == ("expiry", D("2025-11-10"))
    assert upcoming.original_due_on == D("2025-08-12")
    assert upcoming.days_remaining == 70
    assert [e.event_id for e in upcoming.extensions] == [first]
    assert upcoming.because == (set_, first)
    (passed,) = seen.passed
    assert (passed.deadline_id, passed.outcome, passed.days_remaining) == ("tiktok", "extended by EO", None)
    assert resolved in passed.because


def test_issue_status_history_counts_events_up_to_as_of() -> None:
    stream = Stream()
    stream.add(IssueRaised(occurred_on=D("2025-03-01"), issue_id="tiktok", title="TikTok's US spin-off"))
    stream.add(DemandMade(occurred_on=D("2025-04-01"), by="US", to="CN", issue_id="tiktok", text="approve the sale"))
    stream.add(IssueUpdated(occurred_on=D("2025-06-01"), issue_id="tiktok", status="in_negotiation"))
    stream.add(ConcessionMade(occurred_on=D("2025-09-15"), by="CN", issue_id="tiktok", text="framework deal"))
    stream.add(IssueUpdated(occurred_on=D("2025-09-15"), issue_id="tiktok", status="resolved"))

    (before,) = issues(view(stream.state, D("2025-07-01"), LATER)).issues
    (after,) = issues(view(stream.state, D("2025-09-15"), LATER)).issues

    assert (before.title, before.status) == ("TikTok's US spin-off", "in_negotiation")
    assert [h.status for h in before.history] == ["open", "in_negotiation"]
    assert [p.kind for p in before.positions] == ["demand"]
    assert after.status == "resolved"
    assert [p.kind for p in after.positions] == ["demand", "concession"]
    assert len(after.because) == 5


def test_round_counts_from_its_occurred_on_and_becomes_held() -> None:
    stream = Stream()
    stockholm = RoundScheduled(
        occurred_on=D("2025-07-20"),
        round_id="stockholm",
        name="Stockholm talks",
        location="Stockholm",
        starts_on=D("2025-07-28"),
        ends_on=D("2025-07-29"),
    )
    stream.add(stockholm)
    stream.add(
        RoundHeld(
            occurred_on=D("2025-07-29"),
            round_id="stockholm",
            name="Stockholm talks",
            starts_on=D("2025-07-28"),
            ends_on=D("2025-07-29"),
            outcome="Agreed to seek extension",
        )
    )

    assert rounds(view(stream.state, D("2025-07-19"), LATER)).rounds == ()
    (scheduled,) = rounds(view(stream.state, D("2025-07-25"), LATER)).rounds
    (held,) = rounds(view(stream.state, D("2025-07-30"), LATER)).rounds
    assert (scheduled.status, scheduled.outcome) == ("scheduled", None)
    assert (held.status, held.outcome, held.location) == ("held", "Agreed to seek extension", "Stockholm")


def test_statements_made_on_or_before_as_of_filter_by_speaker_party_and_topic() -> None:
    stream = Stream()
    li = Person(name="Li Chenggang", role="Trade negotiator", party="CN")
    bessent = Person(name="Scott Bessent", role="Treasury Secretary", party="US")
    agreed = stream.add(
        StatementMade(occurred_on=D("2025-07-29"), speaker=li, paraphrase="Extension agreed", topics=("truce",))
    )
    stream.add(
        StatementMade(occurred_on=D("2025-07-29"), speaker=bessent, quote="Nothing is agreed", about=("truce",))
    )
    stream.add(StatementMade(occurred_on=D("2025-08-01"), speaker=bessent, quote="Later", topics=("rare-earths",)))

    def said(**filters: str) -> list[str]:
        found = statements(view(stream.state, D("2025-07-30"), LATER), **filters).statements
        return [s.speaker.name for s in found]

    assert said() == ["Li Chenggang", "Scott Bessent"]
    assert said(speaker="scott bessent") == ["Scott Bessent"]
    assert said(party="CN") == ["Li Chenggang"]
    assert said(topic="truce") == ["Li Chenggang", "Scott Bessent"]
    assert said(topic="rare-earths") == []
    assert statements(view(stream.state, D("2025-07-30"), LATER)).statements[0].because == (agreed,)


# --- the incremental state ---------------------------------------------------------------


def test_evolving_one_event_at_a_time_answers_like_a_fold() -> None:
    stream = Stream()
    geneva(stream)
    stream.add(extension("2025-08-11", "2025-11-10"))

    stepped = State()
    for recorded in stream.records:
        stepped = evolve(stepped, recorded)

    assert tariff_schedule(view(stepped, D("2025-09-01"), LATER)) == tariff_schedule(
        view(stream.state, D("2025-09-01"), LATER)
    )
    assert stepped.version == len(stream.records)


def test_an_old_state_keeps_its_answers_when_evolved_again() -> None:
    stream = Stream()
    stream.add(tariff("2025-01-01", 10))
    checkpoint = fold(stream.records)
    stream.add(tariff("2025-02-01", 20))
    newer = evolve(checkpoint, stream.records[-1])

    other = Stream()
    other.add(tariff("2025-02-01", 99))
    branch = evolve(checkpoint, other.records[0])

    assert rates(us_on_cn(checkpoint, "2025-03-01")) == {"duty": 10}
    assert rates(us_on_cn(newer, "2025-03-01")) == {"duty": 20}
    assert rates(us_on_cn(branch, "2025-03-01")) == {"duty": 99}
