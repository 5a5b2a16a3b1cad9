"""Every event type is described, has a lane, and is folded by a read model or declared not folded; the read
models' registry is what state answers, parts and diffs are built from."""

from __future__ import annotations

import datetime as dt
from importlib import resources

import msgspec
import pytest

from events.describe import LANES, describe
from events.payloads import (
    EVENT_TYPES,
    AnyEvent,
    Event,
    EventCorrected,
    EventRetracted,
    KeyCreated,
    KeyRevoked,
    MeasureChanged,
    Person,
    StatementMade,
    TruceEnded,
)
from projections import registry
from service.queries.state import PARTS, StateOut

SYSTEM_TYPES = (KeyCreated, KeyRevoked)
ALL_TYPES = (*EVENT_TYPES.values(), *SYSTEM_TYPES)
_decode = msgspec.json.Decoder(AnyEvent).decode
_ON = dt.date(2025, 5, 12)
_TARGET = "0b8f8a52-7c8e-4a43-9f0e-6d3f7e2b2a11"


def _shipped() -> list[Event]:
    """Every event of every shipped dataset: the real record uses nearly every type."""
    found = []
    for entry in resources.files("events.datasets").iterdir():
        if entry.name.endswith(".jsonl"):
            found += [_decode(line) for line in entry.read_text(encoding="utf-8").splitlines() if line.strip()]
    return found


def _examples() -> dict[type[Event], list[Event]]:
    said = StatementMade(occurred_on=_ON, speaker=Person(name="Scott Bessent", party="US"), quote="Good talks.")
    extra: list[Event] = [
        EventCorrected(occurred_on=_ON, target=_TARGET, replacement=said, reason="misquoted"),
        EventRetracted(occurred_on=_ON, target=_TARGET, reason="misattributed"),
        KeyCreated(occurred_on=_ON, key_id="key_1", name="ana", role="reporter"),
        KeyRevoked(occurred_on=_ON, key_id="key_1", name="ana"),
        TruceEnded(occurred_on=_ON, truce_id="geneva", terms="Either side ends the truce."),
    ]
    by_type: dict[type[Event], list[Event]] = {}
    for event in [*_shipped(), *extra]:
        by_type.setdefault(type(event), []).append(event)
    return by_type


EXAMPLES = _examples()


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda kind: kind.__name__)
def test_every_event_type_has_a_title_a_summary_and_a_lane(kind: type[Event]) -> None:
    examples = EXAMPLES.get(kind)
    assert examples, f"no example of {kind.__name__}: record one in a dataset, or add one to this test"
    for event in examples:
        shown = describe(event)
        assert shown.title.strip() and shown.summary.strip() and shown.group.strip(), shown
        assert shown.lane in LANES
        assert "\n" not in shown.title and "\n" not in shown.summary, "one line each"


def test_an_event_without_its_own_summary_is_summed_up_from_its_payload() -> None:
    tariff = next(e for e in EXAMPLES[MeasureChanged] if e.rate_pct is not None and e.effective_from is not None)
    without = msgspec.structs.replace(tariff, summary=None)
    line = describe(without).summary
    assert line.startswith(f"{tariff.imposed_by} → {tariff.applies_to}: ")
    assert f"{tariff.rate_pct:g}%" in line and tariff.effective_from.isoformat() in line
    assert describe(tariff).summary == tariff.summary


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda kind: kind.__name__)
def test_every_event_type_is_folded_by_a_read_model_or_declared_not_folded(kind: type[Event]) -> None:
    folded_by = [m.name for m in registry.folding(kind)]
    why = registry.why_not_folded(kind)
    assert folded_by or why, f"{kind.__name__}: no read model folds it; fold it, or declare registry.not_folded(...)"
    assert not (folded_by and why), f"{kind.__name__} is folded by {folded_by} but declared not folded: {why}"


def test_an_event_type_files_under_one_read_model_only() -> None:
    def steal(event: MeasureChanged) -> str:
        return event.measure_id

    with pytest.raises(ValueError, match="already filed under the 'measures' read model"):
        registry.register(registry.ReadModel(name="copycat", folds=(MeasureChanged,), entity=steal))
    assert "copycat" not in {m.name for m in registry.read_models()}


def test_state_answers_have_one_field_per_registered_part_in_order() -> None:
    parts = list(registry.parts())
    assert list(PARTS) == parts
    fields = StateOut.__struct_fields__
    assert [f for f in fields if f in parts] == parts
    assert {"as_of", "known_at", "position", "coverage", "sources", "corroboration"} <= set(fields)
