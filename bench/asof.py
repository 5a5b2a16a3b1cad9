"""Time travel cost: full-state answers at a random as_of vs today, on negotiations of 10^2..10^5 events.

Builds synthetic negotiations in memory (no store, no HTTP) spread over ten years whose state stays
bounded while history grows: 30 measures (tariffs each way under several legal bases, export
controls) changed over and over - rate steps, some scheduled ahead, temporary rates, suspensions
until the truce deadline, removals and re-impositions, threats - a truce extended again and again,
10 deadlines with extension chains, 15 issues whose status keeps changing, rounds, and statements
for the rest, with a few backfills (recorded late, dated early). Measure changes and statements grow
with the size; what a full answer lists in full (extension chains, issue histories and positions,
truce events, rounds) is capped at calendar-like counts, as in a real negotiation, so that only
history, not the answer, grows.

For each size: fold once, then time N full-state queries (truce + tariff_schedule + measures +
deadlines + issues + rounds, one view) at a random as_of with known_at = now, N at the last date
(the current state), and N with a random past known_at. Prints median latencies and the ratios
(10^5 / 10^2 at a random as_of, target <= 3; random as_of / current, target <= 2).
Run: `.venv/bin/python -m bench.asof` (about a minute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
import uuid
from collections.abc import Callable

import msgspec

from events.payloads import (
    ConcessionMade,
    DeadlineExtended,
    DeadlineResolved,
    DeadlineSet,
    DemandMade,
    Event,
    IssueRaised,
    IssueUpdated,
    MeasureChanged,
    NegotiationOpened,
    Person,
    RoundHeld,
    RoundScheduled,
    StatementMade,
    TruceAgreed,
    TruceExtended,
)
from events.records import Recorded, stream_id
from projections import (
    State,
    deadlines,
    fold,
    issues,
    measures,
    rounds,
    tariff_schedule,
    truce,
    view,
)
from projections.state import forget_steps

NEGOTIATION = "bench-asof"
START = dt.date(2016, 1, 1)
END = dt.date(2025, 12, 31)
SPAN = (END - START).days
RECORDED_FROM = dt.datetime(2016, 1, 2, tzinfo=dt.UTC)
TRUCE_DEADLINE = "truce-expiry"
DAY = dt.timedelta(days=1)

# (measure_id, kind, imposed_by, applies_to, legal basis, suspended while the truce holds)
MEASURES: list[tuple[str, str, str, str, str, bool]] = [
    *(
        (f"us-cn-{basis.split()[-1].lower()}-{n}", "tariff", "US", "CN", basis, n % 2 == 0)
        for n, basis in enumerate(
            ["IEEPA fentanyl", "IEEPA reciprocal", "Section 301 list1", "Section 301 list3", "Section 232 steel",
             "Section 232 autos", "Section 201 solar", "IEEPA reciprocal", "Section 301 list4", "Section 232 copper",
             "IEEPA fentanyl", "Section 301 ships"]
        )
    ),
    *(
        (f"cn-us-{n}", "tariff", "CN", "US", basis, n % 2 == 1)
        for n, basis in enumerate(
            ["Tariff Commission announcement 2025-4", "Tariff Commission retaliation", "Anti-dumping soybean",
             "Tariff Commission announcement 2025-5", "Anti-dumping pork", "Tariff Commission retaliation",
             "Tariff Commission announcement 2019-3", "Anti-dumping chicken"]
        )
    ),
    *((f"eu-us-{n}", "tariff", "EU", "US", "Regulation 2018/886", False) for n in range(2)),
    *((f"us-eu-{n}", "tariff", "US", "EU", "Section 232 steel", False) for n in range(2)),
    *((f"ctl-{n}", "export_control", "US" if n < 3 else "CN", "CN" if n < 3 else "US", "EAR" if n < 3 else "MOFCOM", n % 2 == 0)
      for n in range(6)),
]
SUSPENDABLE = [m for m in MEASURES if m[5]]
DEADLINE_IDS = [TRUCE_DEADLINE, *(f"review-{n}" for n in range(1, 10))]
ISSUES = [f"issue-{n:02d}" for n in range(1, 16)]
SPEAKERS = [
    Person(name="Scott Bessent", party="US"), Person(name="Jamieson Greer", party="US"),
    Person(name="He Lifeng", party="CN"), Person(name="Li Chenggang", party="CN"),
    Person(name="Maros Sefcovic", party="EU"), Person(name="Howard Lutnick", party="US"),
]
RATES = [7.5, 10, 15, 20, 25, 34, 50, 84, 125]

# Answer-listing streams: share of the events beyond the skeleton, and the calendar cap.
CAPPED = {"truce": (0.02, 40), "deadline": (0.04, 90), "issue": (0.05, 150), "position": (0.02, 45), "round": (0.02, 40)}
MEASURE_SHARE = 0.45


def _day(rng: random.Random, after: dt.date = START) -> dt.date:
    return after + dt.timedelta(days=rng.randrange(max(1, (END - after).days)))


def _measure_change(rng: random.Random, on: dt.date, spec: tuple[str, str, str, str, str, bool]) -> MeasureChanged:
    measure_id, kind, by, to, basis, suspendable = spec
    is_tariff = kind == "tariff"
    roll = rng.random()
    fields: dict = {}
    if suspendable and roll < 0.22:
        status = "suspended"
        fields["until_deadline"] = TRUCE_DEADLINE
        fields["rate_pct"] = rng.choice(RATES[:3]) if is_tariff and rng.random() < 0.5 else None
    elif roll < 0.30:
        status = "removed"
    elif roll < 0.37:
        status = rng.choice(["threatened", "announced"])
        fields["rate_pct"] = rng.choice(RATES) if is_tariff else None
    elif roll < 0.42:
        status = "in_force"
        fields["effective_until"] = on + dt.timedelta(days=rng.randrange(30, 180))
        fields["rate_pct"] = rng.choice(RATES) if is_tariff else None
    else:
        status = "in_force"
        fields["rate_pct"] = rng.choice(RATES) if is_tariff else None
        if rng.random() < 0.3:  # scheduled ahead
            fields["effective_from"] = on + dt.timedelta(days=rng.randrange(7, 60))
    if fields.get("effective_until") and fields.get("effective_from"):
        fields["effective_until"] = max(fields["effective_until"], fields["effective_from"])
    return MeasureChanged(
        occurred_on=on,
        measure_id=measure_id,
        kind=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        imposed_by=by,
        applies_to=to,
        legal_basis=basis if rng.random() < 0.7 else None,
        scope="all goods" if rng.random() < 0.1 else None,
        **fields,
    )


def negotiation(size: int, seed: int = 7) -> list[Recorded]:
    rng = random.Random(seed * 1_000_003 + size)
    dated: list[Event] = [NegotiationOpened(occurred_on=START, title="Bench trade talks", parties=("US", "CN", "EU"))]
    # The skeleton: every entity of the bounded state.
    for n, spec in enumerate(MEASURES):
        on = START + dt.timedelta(days=n * 3)
        dated.append(
            MeasureChanged(
                occurred_on=on, measure_id=spec[0], kind=spec[1], status="in_force",  # type: ignore[arg-type]
                imposed_by=spec[2], applies_to=spec[3], name=f"Measure {spec[0]}", legal_basis=spec[4],
                rate_pct=rng.choice(RATES) if spec[1] == "tariff" else None,
            )
        )
    truce_on = START + dt.timedelta(days=400)
    for n, deadline_id in enumerate(DEADLINE_IDS):
        on = truce_on if deadline_id == TRUCE_DEADLINE else START + dt.timedelta(days=30 + 200 * n)
        dated.append(DeadlineSet(occurred_on=on, deadline_id=deadline_id, title=f"Deadline {deadline_id}",
                                 due_on=on + dt.timedelta(days=90), consequence="tariffs snap back"))
    dated.append(TruceAgreed(occurred_on=truce_on, truce_id="geneva", parties=("US", "CN"), deadline_id=TRUCE_DEADLINE,
                             suspends=tuple(m[0] for m in SUSPENDABLE)))
    for n, issue_id in enumerate(ISSUES):
        dated.append(IssueRaised(occurred_on=START + dt.timedelta(days=10 + 90 * n), issue_id=issue_id,
                                 title=f"Issue {n}", category=rng.choice(["agriculture", "fentanyl", "technology"])))
    rest = max(0, size - len(dated))
    counts = {name: min(int(share * rest), cap) for name, (share, cap) in CAPPED.items()}
    counts["measure"] = int(MEASURE_SHARE * rest)
    counts["statement"] = rest - sum(counts.values())

    for _ in range(counts["truce"] // 2):  # an extension: the truce and its deadline
        on = _day(rng, truce_on)
        due = on + dt.timedelta(days=90)
        dated.append(TruceExtended(occurred_on=on, truce_id="geneva", deadline_id=TRUCE_DEADLINE))
        dated.append(DeadlineExtended(occurred_on=on, deadline_id=TRUCE_DEADLINE, due_on=due, reason="extended"))
    for n in range(counts["truce"] % 2 + counts["deadline"]):
        deadline_id = DEADLINE_IDS[1 + n % (len(DEADLINE_IDS) - 1)]
        on = _day(rng)
        if n == counts["deadline"] - 1:
            dated.append(DeadlineResolved(occurred_on=on, deadline_id=deadline_id, outcome="met"))
        else:
            dated.append(DeadlineExtended(occurred_on=on, deadline_id=deadline_id,
                                          due_on=on + dt.timedelta(days=rng.randrange(60, 180))))
    for _ in range(counts["issue"]):
        dated.append(IssueUpdated(occurred_on=_day(rng), issue_id=rng.choice(ISSUES),
                                  status=rng.choice(["open", "in_negotiation", "stalled", "resolved", "in_negotiation"])))
    for _ in range(counts["position"]):
        kind = rng.choice([DemandMade, ConcessionMade])
        dated.append(kind(occurred_on=_day(rng), by=rng.choice(["US", "CN"]), issue_id=rng.choice(ISSUES), text="position"))
    for n in range(counts["round"] // 2 + counts["round"] % 2):
        on = _day(rng)
        starts = on + dt.timedelta(days=20)
        dated.append(RoundScheduled(occurred_on=on, round_id=f"round-{n:03d}", name=f"Round {n}", starts_on=starts,
                                    location=rng.choice(["Geneva", "London", "Stockholm", "Madrid"])))
        if n < counts["round"] // 2:
            dated.append(RoundHeld(occurred_on=starts + DAY, round_id=f"round-{n:03d}", name=f"Round {n}", starts_on=starts,
                                   ends_on=starts + DAY, outcome="progress"))
    for _ in range(counts["measure"]):
        dated.append(_measure_change(rng, _day(rng), rng.choice(MEASURES)))
    for _ in range(counts["statement"]):
        dated.append(StatementMade(occurred_on=_day(rng), speaker=rng.choice(SPEAKERS), quote="We had candid talks.",
                                   topics=(rng.choice(["tariffs", "truce", "fentanyl", "soybeans"]),)))
    # Recorded in world order, except ~2% backfills recorded later than their neighbours.
    dated.sort(key=lambda e: e.occurred_on)
    late = [e for e in dated[1:] if rng.random() < 0.02]
    late_ids = {id(e) for e in late}
    order = [e for e in dated if id(e) not in late_ids]
    for e in late:
        order.insert(rng.randrange(len(order) - len(order) // 4, len(order) + 1), e)
    step = dt.timedelta(days=SPAN) / max(1, len(order))
    return [
        Recorded(
            originator_id=stream_id(NEGOTIATION),
            originator_version=n,
            event_id=str(uuid.UUID(int=rng.getrandbits(128))),
            negotiation_id=NEGOTIATION,
            recorded_at=RECORDED_FROM + step * n,
            recorded_by="bench",
            request_id="bench",
            event=event,
        )
        for n, event in enumerate(order, start=1)
    ]


def full_state(state: State, as_of: dt.date, known_at: dt.datetime) -> tuple:
    seen = view(state, as_of, known_at)
    return truce(seen), tariff_schedule(seen), measures(seen), deadlines(seen), issues(seen), rounds(seen)


def median_ms(queries: int, ask: Callable[[], tuple[dt.date, dt.datetime]], state: State, kept: bool = False) -> float:
    """Median of `queries` answers; unless `kept`, with the answers kept for steps dropped before each (the fold's
    own cost, what the targets are about), else as a server answers them (entities' answers kept per step)."""
    times = []
    for _ in range(queries):
        as_of, known_at = ask()
        if not kept:
            forget_steps(state)
        started = time.perf_counter()
        full_state(state, as_of, known_at)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10**2, 10**3, 10**4, 10**5])
    args = parser.parse_args()
    rng = random.Random(11)
    rows = []
    print("median latency of one full-state answer (truce, tariff_schedule, measures, deadlines, issues, rounds)")
    print(f"{'events':>8} {'fold s':>7} {'answer KB':>10} {'as_of ms':>9} {'current ms':>11} {'known_at ms':>12} {'as_of/current':>14}"
          f"   {'kept: as_of, current, known_at ms'}")
    for size in args.sizes:
        records = negotiation(size)
        started = time.perf_counter()
        state = fold(records)
        folded = time.perf_counter() - started
        last = max(r.event.occurred_on for r in records)
        recorded = [r.recorded_at for r in records]
        answer = len(msgspec.json.encode(full_state(state, last, dt.datetime.now(dt.UTC)))) / 1024  # and warm up
        random_as_of = median_ms(args.queries, lambda: (_day(rng), dt.datetime.now(dt.UTC)), state)
        current = median_ms(args.queries, lambda last=last: (last, dt.datetime.now(dt.UTC)), state)
        past = median_ms(args.queries, lambda recorded=recorded: (_day(rng), rng.choice(recorded)), state)
        kept = [
            median_ms(args.queries, lambda: (_day(rng), dt.datetime.now(dt.UTC)), state, kept=True),
            median_ms(args.queries, lambda last=last: (last, dt.datetime.now(dt.UTC)), state, kept=True),
            median_ms(args.queries, lambda recorded=recorded: (_day(rng), rng.choice(recorded)), state, kept=True),
        ]
        rows.append((size, random_as_of, current))
        print(
            f"{len(records):>8} {folded:>7.2f} {answer:>10.1f} {random_as_of:>9.2f} {current:>11.2f} {past:>12.2f}"
            f" {random_as_of / current:>14.2f}   " + " ".join(f"{ms:>6.2f}" for ms in kept)
        )
    (small, small_as_of, _), (large, large_as_of, large_current) = rows[0], rows[-1]
    growth = large_as_of / small_as_of
    against = large_as_of / large_current
    print("as_of: random as_of, known_at now; current: last date, known_at now; known_at: random as_of and past known_at;")
    print("  each with the answers kept for steps dropped before it (the fold's own cost); kept: the same questions with")
    print("  them kept across answers, as a server asks them (projections.state.entity_step)")
    print(f"as_of latency {large} / {small} events: {growth:.2f} (target <= 3) {'ok' if growth <= 3 else 'MISSED'}")
    print(f"as_of / current at {large} events:     {against:.2f} (target <= 2) {'ok' if against <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
