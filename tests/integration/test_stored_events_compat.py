"""A store written by Parley 0.1 opens with today's code and answers the same questions the same way.

tests/fixtures/store-v0.1 holds a SQLite store written through the 0.1 API (every event type of that release,
corrections, a retraction) and what 0.1 answered. Today's answers may add fields; every value 0.1 gave must
come back unchanged, except where the model now says more on purpose: a measure 0.1 showed with no status
(nothing in effect) or with a threat or announcement now carries its lifecycle status (`expired`,
`announced`, ...) with its `since` and the events behind it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store-v0.1"
LIFECYCLE_FIELDS = {"status", "since", "rate_pct", "until", "because"}


class _Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    with gzip.open(FIXTURE / "answers.json.gz", "rt") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def answers(recorded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Today's answers to every question 0.1 was asked, from a copy of its store."""
    folder = tmp_path_factory.mktemp("store-v0.1")
    shutil.copy(FIXTURE / "parley.db", folder / "parley.db")
    clock = _Clock(dt.datetime.fromisoformat(recorded["clock"].replace("Z", "+00:00")))
    settings = Settings(database_url=str(folder / "parley.db"), signing_key_file=str(folder / "signing.key"), run_webhooks=False)
    found = {}
    with TestClient(create_app(settings, clock=clock)) as client:
        key = client.app.state.key_store.create(name="compat", role="reader", created_by="test").key
        for path in recorded["requests"]:
            response = client.get(path, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, (path, response.text)
            found[path] = response.json()
    return found


def _refined(answer: Any) -> set[str]:
    """Measures 0.1 listed with no act in effect: today's lifecycle says more about them."""
    found: set[str] = set()
    if isinstance(answer, dict):
        if "measure_id" in answer and "in_force" in answer and answer.get("status") in (None, "threatened", "announced"):
            found.add(answer["measure_id"])
        for value in answer.values():
            found |= _refined(value)
    elif isinstance(answer, list):
        for item in answer:
            found |= _refined(item)
    return found


def assert_kept(old: Any, new: Any, path: str, refined: set[str]) -> None:
    if isinstance(old, dict):
        assert isinstance(new, dict), path
        lifecycle = "measure_id" in old and "in_force" in old and old["measure_id"] in refined
        for key, value in old.items():
            assert key in new, f"{path}.{key} is gone"
            if lifecycle and key in LIFECYCLE_FIELDS:
                continue
            if key == "corroboration":
                for item, verdict in value.items():
                    if item.removeprefix("measures.") not in refined:
                        assert new[key][item] == verdict, f"{path}.{key}.{item}"
                continue
            if key == "changes":  # a diff lists more now (new fields); what it listed stays, by path
                now = {c["path"]: c for c in new[key]}
                for change in value:
                    if any(change["path"] == f"measures.{m}" or change["path"].startswith(f"measures.{m}.") for m in refined):
                        continue
                    assert change["path"] in now, f"{path}.changes lost {change['path']}"
                    assert_kept(change, now[change["path"]], f"{path}.changes[{change['path']}]", refined)
                continue
            if path.startswith("/v1/events") and key == "items":  # the feed has grown since (this test's own key)
                value, new = value, {**new, key: new[key][: len(value)]}
            assert_kept(value, new[key], f"{path}.{key}", refined)
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), f"{path}: {len(old)} items, now {len(new) if isinstance(new, list) else new}"
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            assert_kept(before, after, f"{path}[{index}]", refined)
    else:
        assert new == old, f"{path}: {old!r}, now {new!r}"


def test_every_answer_of_the_previous_release_is_given_again(recorded: dict[str, Any], answers: dict[str, Any]) -> None:
    refined = {
        negotiation: set().union(*(_refined(a) for p, a in recorded["requests"].items() if f"/{negotiation}/" in p))
        for negotiation in ("us-china-trade-2025", "fixture-talks")
    }
    assert refined["fixture-talks"], "the fixture has measures with no act in effect"
    for path, old in recorded["requests"].items():
        negotiation = next((n for n in refined if f"/{n}" in path), None)
        assert_kept(old, answers[path], path, refined.get(negotiation, set()) if negotiation else set())


def test_the_old_store_answers_with_the_new_fields(answers: dict[str, Any]) -> None:
    state = answers["/v1/negotiations/fixture-talks/state?as_of=2025-04-20"]
    # a deadline stored before `ends` existed ends at the end of its day, as it always did
    assert {d["deadline_id"]: d["ends"] for d in state["deadlines"]["upcoming"]} == {"expiry": "end_of_day"}
    assert state["deadlines"]["upcoming"][0]["lapses_on"] == "2025-07-11"
    # the lines not in force are listed apart from those counted: a scheduled rate and a threat
    (aa_bb,) = [d for d in state["tariffs"]["directions"] if d["imposed_by"] == "AA"]
    assert [(m["measure_id"], m["status"], m["since"]) for m in aa_bb["not_in_force"]] == [
        ("aa-later", "announced", "2025-03-02"), ("aa-threat", "threatened", "2025-02-01")]
    assert aa_bb["total_additional_pct"] == 10
    # the steel line ran out on 30 June: 0.1 no longer showed it; it is listed as expired since 1 July
    (aa_bb,) = [d for d in answers["/v1/negotiations/fixture-talks/state?as_of=2025-07-11"]["tariffs"]["directions"]
                if d["imposed_by"] == "AA"]
    assert ("aa-steel", "expired", "2025-07-01") in [(m["measure_id"], m["status"], m["since"]) for m in aa_bb["not_in_force"]]
    assert state["coverage"] == {"record_through": "2025-06-15", "declared": False, "beyond_record": False,
                                 "because": state["coverage"]["because"]}
    later = answers["/v1/negotiations/fixture-talks/state"]  # today, January 2026: past the record
    assert later["coverage"]["beyond_record"] is True
