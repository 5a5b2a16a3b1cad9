"""The 2025 US–China seed period, folded: IEEPA rates, the Geneva truce and its August extension."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from events.payloads import (
    DeadlineExtended,
    DeadlineSet,
    MeasureChanged,
    MeasureStatus,
    NegotiationOpened,
    Source,
    TruceAgreed,
    TruceExtended,
)
from projections import (
    MeasureRate,
    State,
    TariffDirection,
    fold,
    tariff_schedule,
    truce,
    view,
)
from tests.unit import recording

NEGOTIATION = "us-china-trade-2025"
D = dt.date.fromisoformat
WHITE_HOUSE = Source(name="The White House", kind="official", reliability="A", credibility=1)
GENEVA_STATEMENT = Source(
    name="The White House",
    kind="official",
    title="Joint Statement on U.S.-China Economic and Trade Meeting in Geneva",
    published_at=D("2025-05-12"),
    reliability="A",
    credibility=1,
)
EXTENSION_ORDER = Source(
    name="The White House",
    kind="official",
    title="Further Modifying Reciprocal Tariff Rates to Reflect Ongoing Discussions with the PRC",
    published_at=D("2025-08-11"),
)


class Stream(recording.Stream):
    def __init__(self, start: dt.datetime) -> None:
        super().__init__(NEGOTIATION, start)


def ieepa(
    measure_id: str,
    announced: str,
    effective: str,
    rate: float,
    *,
    status: MeasureStatus = "in_force",
    until_deadline: str | None = None,
    lapse_rate_pct: float | None = None,
    suspended_points: float | None = None,
) -> MeasureChanged:
    return MeasureChanged(
        occurred_on=D(announced),
        source=GENEVA_STATEMENT if announced == "2025-05-12" else WHITE_HOUSE,
        measure_id=measure_id,
        kind="tariff",
        status=status,
        imposed_by="US",
        applies_to="CN",
        legal_basis="IEEPA",
        rate_pct=rate,
        effective_from=D(effective),
        until_deadline=until_deadline,
        lapse_rate_pct=lapse_rate_pct,
        suspended_points=suspended_points,
    )


FENTANYL = "us-ieepa-fentanyl-cn"
RECIPROCAL = "us-ieepa-reciprocal-cn"
SEEDED_AT = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
BEFORE_EXTENSION = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
EXTENSION_AT = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class Seed:
    state: State
    ids: dict[str, str]


@pytest.fixture(scope="module")
def seed() -> Seed:
    stream = Stream(SEEDED_AT)
    ids: dict[str, str] = {}
    stream.add(
        NegotiationOpened(
            occurred_on=D("2025-02-01"), source=WHITE_HOUSE, title="US-China trade 2025", parties=("US", "CN")
        )
    )
    stream.add(
        MeasureChanged(
            occurred_on=D("2024-09-13"),
            source=Source(name="USTR", kind="official"),
            measure_id="us-301-semiconductors-cn",
            kind="tariff",
            status="in_force",
            imposed_by="US",
            applies_to="CN",
            legal_basis="Section 301, Trade Act of 1974",
            rate_pct=50,
            effective_from=D("2025-01-01"),
        )
    )
    ids["fentanyl_10"] = stream.add(ieepa(FENTANYL, "2025-02-01", "2025-02-04", 10))
    ids["fentanyl_20"] = stream.add(ieepa(FENTANYL, "2025-03-03", "2025-03-04", 20))
    ids["reciprocal_34"] = stream.add(ieepa(RECIPROCAL, "2025-04-02", "2025-04-09", 34))
    ids["reciprocal_84"] = stream.add(ieepa(RECIPROCAL, "2025-04-08", "2025-04-09", 84))
    ids["reciprocal_125"] = stream.add(ieepa(RECIPROCAL, "2025-04-09", "2025-04-10", 125))
    ids["deadline"] = stream.add(
        DeadlineSet(
            occurred_on=D("2025-05-12"),
            source=GENEVA_STATEMENT,
            deadline_id="truce-expiry",
            title="End of the 90-day suspension",
            # "until 12:01 a.m. eastern daylight time on August 12, 2025": the 12th is the first day after it
            due_on=D("2025-08-12"),
            ends="start_of_day",
            consequence="The suspended 24 points of the reciprocal tariff return",
        )
    )
    # Geneva: 10% kept, 24 of the 34 points suspended; a lapse brings back 34%, not the 125% before it
    ids["geneva_10"] = stream.add(
        ieepa(RECIPROCAL, "2025-05-12", "2025-05-14", 10, status="suspended", until_deadline="truce-expiry",
              lapse_rate_pct=34, suspended_points=24)
    )
    ids["truce"] = stream.add(
        TruceAgreed(
            occurred_on=D("2025-05-12"),
            source=GENEVA_STATEMENT,
            truce_id="geneva-truce",
            parties=("US", "CN"),
            effective_from=D("2025-05-14"),
            deadline_id="truce-expiry",
            suspends=(RECIPROCAL,),
        )
    )
    stream.add(
        MeasureChanged(
            occurred_on=D("2025-04-09"),
            source=Source(name="State Council Tariff Commission", kind="official"),
            measure_id="cn-counter-reciprocal-us",
            kind="tariff",
            status="in_force",
            imposed_by="CN",
            applies_to="US",
            legal_basis="Tariff Law of the PRC",
            rate_pct=84,
            effective_from=D("2025-04-10"),
        )
    )
    ids["extension"] = stream.add(
        DeadlineExtended(
            occurred_on=D("2025-08-11"), source=EXTENSION_ORDER, deadline_id="truce-expiry", due_on=D("2025-11-10"),
            ends="start_of_day",
        ),
        at=EXTENSION_AT,
    )
    ids["truce_extended"] = stream.add(
        TruceExtended(
            occurred_on=D("2025-08-11"), source=EXTENSION_ORDER, truce_id="geneva-truce", deadline_id="truce-expiry"
        )
    )
    return Seed(state=fold(stream.records), ids=ids)


def us_on_cn(
    state: State, as_of: str, known_at: dt.datetime = NOW, legal_basis: str | None = "IEEPA"
) -> TariffDirection:
    schedule = tariff_schedule(view(state, D(as_of), known_at), legal_basis=legal_basis)
    (direction,) = [d for d in schedule.directions if (d.imposed_by, d.applies_to) == ("US", "CN")]
    return direction


def rates(measures: tuple[MeasureRate, ...]) -> dict[str, float | None]:
    return {m.measure_id: m.rate_pct for m in measures}


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2025-02-03", {}),
        ("2025-03-03", {FENTANYL: 10}),
        ("2025-03-04", {FENTANYL: 20}),
        ("2025-04-09", {FENTANYL: 20, RECIPROCAL: 84}),
        ("2025-04-10", {FENTANYL: 20, RECIPROCAL: 125}),
        ("2025-05-13", {FENTANYL: 20, RECIPROCAL: 125}),
        ("2025-05-14", {FENTANYL: 20, RECIPROCAL: 10}),
    ],
)
def test_ieepa_rates_on_china_follow_the_2025_escalation_and_geneva(
    seed: Seed, as_of: str, expected: dict[str, float]
) -> None:
    direction = us_on_cn(seed.state, as_of)

    assert rates(direction.measures) == expected
    assert direction.total_additional_pct == sum(expected.values())


def test_ieepa_total_is_145_on_10_april_because_of_both_orders(seed: Seed) -> None:
    direction = us_on_cn(seed.state, "2025-04-10")

    assert direction.total_additional_pct == 145
    assert {m.measure_id: m.because for m in direction.measures} == {
        FENTANYL: (seed.ids["fentanyl_20"],),
        RECIPROCAL: (seed.ids["reciprocal_125"],),
    }
    assert set(direction.because) == {seed.ids["fentanyl_20"], seed.ids["reciprocal_125"]}


def test_the_day_before_geneva_takes_effect_the_cut_is_pending(seed: Seed) -> None:
    direction = us_on_cn(seed.state, "2025-05-13")

    assert direction.total_additional_pct == 145
    # the cut, and the rate the cut's suspension brings back when it lapses
    assert [(p.measure_id, p.rate_pct, p.effective_from) for p in direction.pending] == [
        (RECIPROCAL, 10, D("2025-05-14")), (RECIPROCAL, 34, D("2025-08-12"))
    ]
    assert seed.ids["geneva_10"] in direction.pending[0].because


def test_legal_basis_filter_leaves_out_section_301_and_other_directions(seed: Seed) -> None:
    everything = tariff_schedule(view(seed.state, D("2025-05-14"), NOW))

    us_cn = next(d for d in everything.directions if (d.imposed_by, d.applies_to) == ("US", "CN"))
    assert us_cn.total_additional_pct == 80
    assert [(d.imposed_by, d.applies_to) for d in everything.directions] == [("CN", "US"), ("US", "CN")]
    assert us_on_cn(seed.state, "2025-05-14").total_additional_pct == 30


def test_truce_before_expiry_counts_days_left_and_the_lapse_rate(seed: Seed) -> None:
    geneva = truce(view(seed.state, D("2025-07-28"), NOW))

    assert (geneva.status, geneva.truce_id, geneva.effective_from) == ("active", "geneva-truce", D("2025-05-14"))
    assert (geneva.expires_on, geneva.ends, geneva.lapses_on, geneva.days_remaining) == (
        D("2025-08-12"), "start_of_day", D("2025-08-12"), 15)
    assert geneva.extensions == ()
    assert geneva.suspends == (RECIPROCAL,)
    assert {seed.ids["truce"], seed.ids["deadline"]} <= set(geneva.because)

    direction = us_on_cn(seed.state, "2025-07-28")
    (reciprocal_now,) = [m for m in direction.measures if m.measure_id == RECIPROCAL]
    assert (reciprocal_now.status, reciprocal_now.rate_pct, reciprocal_now.lapse_rate_pct, reciprocal_now.suspended_points) == (
        "suspended", 10, 34, 24)
    assert reciprocal_now.until == D("2025-08-11")
    lapse = direction.on_truce_lapse
    assert lapse is not None
    assert (lapse.truce_id, lapse.applies_from) == ("geneva-truce", D("2025-08-12"))
    assert rates(lapse.measures) == {FENTANYL: 20, RECIPROCAL: 34}
    assert lapse.total_additional_pct == 54
    reciprocal = next(m for m in lapse.measures if m.measure_id == RECIPROCAL)
    assert {seed.ids["geneva_10"], seed.ids["deadline"]} <= set(reciprocal.because)
    # the lapse is scheduled like any change: the day it applies, the rate it brings back
    assert [(p.measure_id, p.status, p.rate_pct, p.effective_from) for p in direction.pending] == [
        (RECIPROCAL, "in_force", 34, D("2025-08-12"))]


def test_truce_extension_moves_suspended_rates(seed: Seed) -> None:
    geneva = truce(view(seed.state, D("2025-08-20"), NOW))
    direction = us_on_cn(seed.state, "2025-08-20")

    assert (geneva.status, geneva.expires_on, geneva.days_remaining) == ("active", D("2025-11-10"), 82)
    assert [(e.due_on, e.event_id, e.occurred_on) for e in geneva.extensions] == [
        (D("2025-11-10"), seed.ids["extension"], D("2025-08-11"))
    ]
    assert {seed.ids["extension"], seed.ids["truce_extended"]} <= set(geneva.because)
    assert rates(direction.measures) == {FENTANYL: 20, RECIPROCAL: 10}
    assert direction.total_additional_pct == 30
    assert direction.on_truce_lapse is not None
    # the extension moves the lapse and keeps its rate
    assert direction.on_truce_lapse.applies_from == D("2025-11-10")
    assert direction.on_truce_lapse.total_additional_pct == 54


@pytest.mark.parametrize(("as_of", "status", "days_remaining", "reciprocal"), [
    ("2025-08-10", "active", 2, 10),
    ("2025-08-11", "active", 1, 10),  # its last day
    ("2025-08-12", "lapsed", None, 34),  # 12:01 a.m. on the 12th: the first day at the lapse rate
    ("2025-08-20", "lapsed", None, 34),
])
def test_known_before_the_extension_was_recorded_the_truce_lapses_at_the_start_of_12_august(
    seed: Seed, as_of: str, status: str, days_remaining: int | None, reciprocal: float
) -> None:
    geneva = truce(view(seed.state, D(as_of), BEFORE_EXTENSION))
    direction = us_on_cn(seed.state, as_of, known_at=BEFORE_EXTENSION)

    assert (geneva.status, geneva.expires_on, geneva.days_remaining) == (status, D("2025-08-12"), days_remaining)
    assert rates(direction.measures) == {FENTANYL: 20, RECIPROCAL: reciprocal}
    assert direction.total_additional_pct == 20 + reciprocal
    if status == "lapsed":
        line = next(m for m in direction.measures if m.measure_id == RECIPROCAL)
        assert (line.status, line.since) == ("in_force", D("2025-08-12"))
        assert {seed.ids["geneva_10"], seed.ids["deadline"]} <= set(line.because)
        assert direction.on_truce_lapse is None
