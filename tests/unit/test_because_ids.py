"""because_ids walks a JSON answer without recursion and keeps document order."""

from __future__ import annotations

from typing import Any

from service.queries.sources import because_ids


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
