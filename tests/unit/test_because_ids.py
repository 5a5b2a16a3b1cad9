"""because_ids walks a JSON answer without recursion, or the Structs it is encoded from, and keeps document order;
encoded_because_ids reads the same ids off the encoded bytes, or says it cannot; corroboration's listed values read off
the Structs are those of the JSON."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from events.payloads import AnyEvent
from events.records import Recorded
from projections import fold, registry, view
from service.queries.sources import because_ids, encoded_because_ids
from service.queries.state import _stable_id, listed_reasons


def recursive(tree: Any) -> list[str]:
    """The definition: ids under each `because` key, depth first, in document order."""
    if isinstance(tree, dict):
        return [
            found
            for key, value in tree.items()
            for found in (
                [i for i in value if isinstance(i, str)] if key == "because" and isinstance(value, (list, tuple)) else recursive(value)
            )
        ]
    if isinstance(tree, (list, tuple)):
        return [found for item in tree for found in recursive(item)]
    return []


TREE = {
    "truce": {"because": ["t1", "t2"], "status": "active", "suspended": [{"because": ["s1"]}, {"because": ("s2", 3, "s3")}]},
    "tariffs": [
        {"lines": [{"because": ["l1"], "rate": 10}, {"rate": 20, "because": ["l2", "t1"]}], "because": ["d1"]},
        {"because": "not-a-list", "nested": {"deep": [[{"because": ["x"]}]]}},
    ],
    "because": ["top"],
    "deadlines": [],
    "note": None,
    "odd": {"because": {"because": ["in-a-map"]}},
}


def test_ids_come_out_in_document_order_with_repeats_and_non_strings_dropped() -> None:
    assert because_ids(TREE) == ["t1", "t2", "s1", "s2", "s3", "l1", "l2", "t1", "d1", "x", "top", "in-a-map"]
    assert because_ids(TREE) == recursive(TREE)


def test_a_scalar_holds_no_ids() -> None:
    assert because_ids(None) == because_ids("because") == because_ids(3) == []


def test_a_tree_deeper_than_the_recursion_limit_is_walked() -> None:
    tree: Any = {"because": ["leaf"]}
    for depth in range(5000):
        tree = {"because": [f"d{depth}"], "inner": [tree]}
    ids = because_ids(tree)
    assert ids[0] == "d4999" and ids[-1] == "leaf" and len(ids) == 5001


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    rate: float
    why: tuple[str, ...] = msgspec.field(name="because", default=())


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    note: str | None
    lines: tuple[_Line, ...]
    by_id: dict[str, _Line]
    loose: list[Any]
    because: tuple[str, ...]


def test_an_answer_walked_as_structs_gives_the_ids_of_its_json_in_the_same_order() -> None:
    answer = _Answer(
        note="because", lines=(_Line(rate=1, why=("a", "b")), _Line(rate=2)), by_id={"x": _Line(rate=3, why=("c",))},
        loose=[{"because": ["d"]}, _Line(rate=4, why=("e", "a")), [[{"because": ("f",)}]]], because=("g",),
    )
    assert because_ids(answer) == because_ids(msgspec.to_builtins(answer)) == ["a", "b", "c", "d", "e", "a", "f", "g"]


def listed_values(tree: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The definition: each value a JSON state answer lists (as diffs unwrap it), with its path and stable id."""
    found = []
    for part, model in registry.parts().items():
        value = model.listed(tree[part])
        found += [(part, value)] if isinstance(value, dict) else [(f"{part}.{_stable_id(item)}", item) for item in value]
    return found


# Strings that may cut a list short or pass for a key: brackets, quotes, backslashes, commas, newlines.
_AWKWARD = st.text(alphabet=st.sampled_from(['a', 'b', ']', '[', '"', '\\', ',', '\n', '{', ':']), max_size=4)
_KEYS = st.sampled_from(["because", "x", 'x"because', "because\\", "because]"])
_JSON = st.recursive(
    st.none() | st.integers(-3, 3) | _AWKWARD | st.sampled_from(["e1", "e2", "some-event"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_ids_read_off_the_bytes_are_exactly_those_of_the_walk_or_none(tree: Any) -> None:
    found = encoded_because_ids(msgspec.json.encode(tree))
    assert found is None or found == because_ids(tree)


@pytest.mark.parametrize("tree", [
    {"because": ["a]", "b"]},  # cut inside a string
    [{"because": ["a]"]}, {"because": ["]"]}],  # two cuts that would join into one valid string
    {"because": [["a"]]},
    {"because": [{"because": ["a"]}]},
    {"because": [1, "a"]},
    {'x"because': ["q"]},  # a key that only ends in "because
])
def test_a_because_the_bytes_cannot_vouch_for_is_left_to_the_walk(tree: Any) -> None:
    assert encoded_because_ids(msgspec.json.encode(tree)) is None


def test_plain_lists_are_read_off_the_bytes_in_document_order() -> None:
    tree = {"because": ["a", "b"], "c": {"because": []}, "d": [{"because": ["e", "a"]}], "note": 'said "because":["z"]'}
    assert encoded_because_ids(msgspec.json.encode(tree)) == because_ids(tree) == ["a", "b", "e", "a"]


@pytest.mark.parametrize("dataset", ["us-china-trade-2025", "us-eu-trade-2025"])
def test_every_part_of_the_shipped_records_walked_as_structs_gives_the_ids_of_its_json(dataset: str) -> None:
    text = importlib.resources.files("events.datasets").joinpath(f"{dataset}.jsonl").read_text(encoding="utf-8")
    events = [msgspec.json.decode(line, type=AnyEvent) for line in text.splitlines() if line.strip()]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    state = fold(
        Recorded(
            originator_id=uuid.UUID(int=1), originator_version=n, event_id=f"e{n}", negotiation_id=dataset,
            recorded_at=start + dt.timedelta(seconds=n), recorded_by="test", request_id="test", event=event,
        )
        for n, event in enumerate(events, start=1)
    )
    first = min(e.occurred_on for e in events)
    walked = 0
    for day in range(0, (max(e.occurred_on for e in events) - first).days + 60, 5):
        seen = view(state, first + dt.timedelta(days=day), start + dt.timedelta(days=1))
        parts = {name: model.answer(seen, None) for name, model in registry.parts().items()}
        for name, value in parts.items():
            tree = msgspec.to_builtins(value)
            assert because_ids(value) == because_ids(tree), (name, day)
            # the shipped answers are always read off their bytes, never walked
            assert encoded_because_ids(msgspec.json.encode(value)) == because_ids(tree), (name, day)
            walked += len(because_ids(value))
        # corroboration's values and their `because`, off the Structs, are those of the JSON answer
        tree = msgspec.to_builtins(parts)
        assert list(listed_reasons(parts)) == [(path, tuple(item.get("because") or ())) for path, item in listed_values(tree)], day
    assert walked > 1000  # the answers do name their events
