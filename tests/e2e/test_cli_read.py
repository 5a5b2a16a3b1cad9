"""The read commands (`negotiations list`, `state`, `timeline`, `events tail`) run as real processes on an SQLite store."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from events.payloads import (
    DeadlineExtended,
    DeadlineSet,
    DemandMade,
    EventRetracted,
    IssueRaised,
    IssueUpdated,
    MeasureChanged,
    NegotiationOpened,
    Person,
    Source,
    StatementMade,
    TruceAgreed,
    TruceExtended,
)
from service.queries.negotiations import with_corrections
from service.app import create_app
from service.stores import open_log
from service.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# A `parley` with only the read commands, as service/cli.py wires them in.
HARNESS = "import typer, service.cli.read as r; app = typer.Typer(add_completion=False); r.register(app); app()"
BEFORE_EXTENSION = "2026-01-15T00:00:00Z"
D = dt.date


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def parley(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, *args],
        check=False, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=timeout,
    )


def tariff(measure_id: str, by: str, to: str, rate: float, basis: str, on: dt.date, starts: dt.date, **extra: Any) -> MeasureChanged:
    return MeasureChanged(
        occurred_on=on, measure_id=measure_id, kind="tariff", status=extra.pop("status", "in_force"), imposed_by=by,
        applies_to=to, rate_pct=rate, legal_basis=basis, effective_from=starts, **extra,
    )


def _seed(database_url: str) -> dict[str, Any]:
    clock = Clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    log = open_log(Settings(database_url=database_url), clock=clock)

    def record(nid: str, events: list[Any]) -> list[Any]:
        return log.record(nid, events, principal="seed", request_id="seed")

    try:
        record("talks", [NegotiationOpened(occurred_on=D(2025, 1, 1), title="Trade talks", parties=("US", "CN"))])
        record("talks", [
            tariff("us-fentanyl", "US", "CN", 20, "IEEPA", D(2025, 3, 3), D(2025, 3, 4),
                   source=Source(name="Federal Register"), summary="US adds a 20% fentanyl tariff."),
            tariff("us-reciprocal", "US", "CN", 34, "IEEPA", D(2025, 4, 2), D(2025, 4, 5)),
            tariff("cn-counter", "CN", "US", 34, "Tariff Commission", D(2025, 4, 4), D(2025, 4, 10)),
            MeasureChanged(occurred_on=D(2025, 4, 8), measure_id="us-h20", kind="export_control", status="in_force",
                           imposed_by="US", applies_to="CN", name="H20 licence requirement", effective_from=D(2025, 4, 9)),
            DeadlineSet(occurred_on=D(2025, 5, 12), deadline_id="truce-expiry", title="Truce expiry", due_on=D(2025, 8, 12),
                        consequence="Rates return to 34%"),
            TruceAgreed(occurred_on=D(2025, 5, 12), truce_id="geneva", parties=("US", "CN"), effective_from=D(2025, 5, 14),
                        deadline_id="truce-expiry", suspends=("us-reciprocal", "cn-counter")),
            tariff("us-reciprocal", "US", "CN", 10, "IEEPA", D(2025, 5, 12), D(2025, 5, 14), status="suspended",
                   until_deadline="truce-expiry"),
            tariff("cn-counter", "CN", "US", 10, "Tariff Commission", D(2025, 5, 12), D(2025, 5, 14), status="suspended",
                   until_deadline="truce-expiry"),
            IssueRaised(occurred_on=D(2025, 2, 1), issue_id="export-controls", title="US export controls"),
            IssueRaised(occurred_on=D(2025, 2, 1), issue_id="fentanyl", title="Fentanyl precursors"),
            IssueUpdated(occurred_on=D(2025, 5, 20), issue_id="fentanyl", status="resolved"),
            DemandMade(occurred_on=D(2025, 5, 21), by="CN", to="US", issue_id="export-controls", text="Ease export controls"),
        ])
        said = record("talks", [StatementMade(occurred_on=D(2025, 5, 13), speaker=Person(name="Bessent", party="US"),
                                              paraphrase="Talks were constructive", source=Source(name="Reuters"))])
        clock.now = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
        record("talks", [
            DeadlineExtended(occurred_on=D(2025, 8, 11), deadline_id="truce-expiry", due_on=D(2025, 11, 10)),
            TruceExtended(occurred_on=D(2025, 8, 11), truce_id="geneva", deadline_id="truce-expiry"),
            EventRetracted(occurred_on=D(2025, 5, 14), target=said[0].record.event_id, reason="misattributed"),
        ])
        record("other", [NegotiationOpened(occurred_on=D(2024, 6, 1), title="Other talks", parties=("EU", "CN"))])
        record("other", [
            DeadlineSet(occurred_on=D(2024, 6, 2 + i), deadline_id=f"d{i}", title=f"Deadline {i}", due_on=D(2026, 1, 1))
            for i in range(5)
        ])
        return {"head": log.head(), "statement": said[0].record.event_id}
    finally:
        log.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    database = str(tmp_path_factory.mktemp("cli-read") / "parley.db")
    return {"database": database, **_seed(database)}


def _feed(database: str, after: int) -> list[dict[str, Any]]:
    log = open_log(Settings(database_url=database))
    try:
        items, _ = log.feed(after=after, limit=1000)
        return _as_json(with_corrections(log, items))
    finally:
        log.close()


def _as_json(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


def _one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- negotiations list -----------------------------------------------------------------------


def test_negotiations_list_prints_a_table(store):
    result = parley("negotiations", "list", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    talks = next(line for line in result.stdout.splitlines() if " talks " in line)
    for expected in ("Trade talks", "US, CN", "17", "2025-01-01", "2025-08-11"):
        assert expected in talks
    other = next(line for line in result.stdout.splitlines() if " other " in line)
    for expected in ("Other talks", "EU, CN", "6", "2024-06-01", "2024-06-06"):
        assert expected in other


def test_negotiations_list_json(store):
    result = parley("negotiations", "list", "--json", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    found = {n["id"]: n for n in json.loads(result.stdout)}
    assert set(found) == {"talks", "other"}
    assert found["talks"]["event_count"] == 17
    assert found["talks"]["parties"] == ["US", "CN"]
    assert (found["talks"]["first_occurred_on"], found["talks"]["last_occurred_on"]) == ("2025-01-01", "2025-08-11")
    assert found["other"]["title"] == "Other talks"


def test_database_defaults_to_the_environment(store):
    result = parley("negotiations", "list", "--json", env={**_env(), "PARLEY_DATABASE_URL": store["database"]})
    assert result.returncode == 0, result.stderr
    assert {n["id"] for n in json.loads(result.stdout)} == {"talks", "other"}


# --- state -----------------------------------------------------------------------------------


def test_state_prints_tariffs_truce_measures_issues_and_deadlines(store):
    result = parley("state", "talks", "--as-of", "2025-09-01", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Trade talks" in out
    # tariffs by direction, each measure with rate, legal basis and since; what a truce lapse brings back
    assert "US → CN  total additional 30%" in out
    assert "CN → US  total additional 10%" in out
    fentanyl = next(line for line in out.splitlines() if "us-fentanyl" in line)
    assert all(s in fentanyl for s in ("20%", "IEEPA", "2025-03-04"))
    reciprocal = next(line for line in out.splitlines() if "us-reciprocal" in line)
    assert all(s in reciprocal for s in ("10%", "IEEPA", "2025-05-14"))
    assert "on truce lapse (geneva), from 2025-11-11: total 54% (us-reciprocal 10% → 34%)" in out
    assert "on truce lapse (geneva), from 2025-11-11: total 34% (cn-counter 10% → 34%)" in out
    # the truce, extended, with days left
    assert "active" in out
    assert "2025-11-10 (70 days left)" in out
    assert "to 2025-11-10 (agreed 2025-08-11)" in out
    assert "us-reciprocal, cn-counter" in out
    # non-tariff measures
    h20 = next(line for line in out.splitlines() if "us-h20" in line)
    assert "US → CN" in h20 and "in force since 2025-04-09" in h20
    assert "H20 licence requirement" in out
    # open issues only
    assert "export-controls" in out and "Ease export controls" in out
    assert "Fentanyl precursors" not in out
    # upcoming deadlines with days left
    deadline = next(line for line in out.splitlines() if "truce-expiry" in line)
    assert all(s in deadline for s in ("Truce expiry", "2025-11-10", "70 days", "Rates return to 34%"))


def test_a_date_past_the_record_gets_one_warning_line_and_a_date_within_none(store):
    beyond = parley("state", "talks", "--as-of", "2025-09-01", "--database", store["database"])
    within = parley("state", "talks", "--as-of", "2025-08-01", "--database", store["database"])
    as_json = parley("state", "talks", "--as-of", "2025-09-01", "--json", "--database", store["database"])

    assert beyond.returncode == 0, beyond.stderr
    (line,) = beyond.stderr.strip().splitlines()
    assert line.startswith("warning: 2025-09-01 is past the end of the record (last recorded event: 2025-08-11)")
    assert "record through 2025-08-11" in beyond.stdout
    assert within.stderr == ""
    # the JSON on stdout stays parseable; the warning goes to stderr, and the answer says it too
    assert json.loads(as_json.stdout)["coverage"]["beyond_record"] is True and "warning:" in as_json.stderr
    timeline = parley("timeline", "talks", "--to", "2025-12-31", "--database", store["database"])
    assert "past the end of the record" in timeline.stderr


def test_state_known_at_shows_what_was_recorded_by_then(store):
    before = parley("state", "talks", "--as-of", "2025-09-01", "--known-at", BEFORE_EXTENSION, "--database", store["database"])
    assert before.returncode == 0, before.stderr
    assert "lapsed" in before.stdout
    assert "US → CN  total additional 54%" in before.stdout
    assert "no upcoming deadlines" in before.stdout
    assert "2025-11-10" not in before.stdout
    early = parley("state", "talks", "--as-of", "2025-06-01", "--known-at", BEFORE_EXTENSION, "--database", store["database"])
    assert "2025-08-12 (72 days left)" in early.stdout
    assert "from 2025-08-13: total 54%" in early.stdout


def test_state_legal_basis_keeps_matching_tariffs(store):
    result = parley("state", "talks", "--as-of", "2025-06-01", "--legal-basis", "ieepa", "--json", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    directions = json.loads(result.stdout)["tariffs"]["directions"]
    assert [(d["imposed_by"], d["applies_to"], d["total_additional_pct"]) for d in directions] == [("US", "CN", 30.0)]


@pytest.fixture(scope="module")
def http(store: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    # public reads: creating a key would append an audit event to the store the other tests count
    settings = Settings(database_url=store["database"], run_projections=False, run_webhooks=False, bootstrap_admin=False,
                        public_read=True)
    with TestClient(create_app(settings)) as client:

        def get(path: str, **params: str) -> Any:
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        yield get


@pytest.mark.parametrize(
    ("as_of", "known_at", "legal_basis"),
    [("2025-06-01", "2026-03-01T00:00:00Z", None), ("2025-09-01", BEFORE_EXTENSION, None), ("2025-04-20", "2026-03-01T00:00:00Z", "Tariff")],
)
def test_state_json_is_what_the_http_api_answers(store, http, as_of, known_at, legal_basis):
    args = ["state", "talks", "--as-of", as_of, "--known-at", known_at, "--json", "--database", store["database"]]
    params = {"as_of": as_of, "known_at": known_at}
    if legal_basis:
        args += ["--legal-basis", legal_basis]
        params["legal_basis"] = legal_basis
    result = parley(*args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == http("/v1/negotiations/talks/state", **params)


def test_state_defaults_to_today_and_now(store):
    result = parley("state", "talks", "--json", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    now = dt.datetime.now(dt.UTC)
    assert answer["as_of"] == now.date().isoformat()
    assert abs(dt.datetime.fromisoformat(answer["known_at"]) - now) < dt.timedelta(minutes=5)
    assert answer["position"] == store["head"] - 6  # the last event of "talks"


# --- why: state --why, diff ------------------------------------------------------------------

FENTANYL_REASON = "2025-03-03 · measure_changed · US adds a 20% fentanyl tariff. · Federal Register"


def test_state_why_lists_the_events_behind_each_value_by_date_type_line_and_source(store):
    plain = parley("state", "talks", "--as-of", "2025-06-01", "--database", store["database"])
    result = parley("state", "talks", "--as-of", "2025-06-01", "--why", "--database", store["database"])

    assert result.returncode == 0, result.stderr
    assert "Why" not in plain.stdout and FENTANYL_REASON not in plain.stdout
    why = result.stdout[result.stdout.index("Why: the events behind each value"):]
    lines = [line.strip(" │") for line in why.splitlines()]
    tariffs = lines.index("tariffs.US->CN")
    assert FENTANYL_REASON in lines[tariffs + 1:]
    assert "2025-05-12 · truce_agreed · Truce geneva agreed from 2025-05-14 until deadline truce-expiry" in why
    assert "measures.us-h20" in lines and "deadlines.truce-expiry" in lines


def test_state_why_json_is_what_the_http_api_answers_with_expand_because(store, http):
    at = {"as_of": "2025-06-01", "known_at": "2026-03-01T00:00:00Z"}
    result = parley("state", "talks", "--as-of", at["as_of"], "--known-at", at["known_at"], "--why", "--json",
                    "--database", store["database"])

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer == http("/v1/negotiations/talks/state", **at, expand="because")
    assert answer["because_events"] and set(answer["because_events"]) == set(answer["sources"])


def test_diff_prints_each_change_with_the_events_behind_it(store):
    result = parley("diff", "talks", "--from", "2025-05-13", "--to", "2025-05-14", "--database", store["database"])

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Trade talks (talks): ") and "from 2025-05-13 to 2025-05-14" in out.splitlines()[0]
    lines = [line.rstrip() for line in out.splitlines()]
    total = lines.index("tariffs.US->CN.total_additional_pct  54 → 30")
    reasons = lines[total + 1: lines.index("tariffs.US->CN.measures.us-reciprocal.rate_pct  34 → 10")]
    assert reasons[0] == "  because:" and any(FENTANYL_REASON in line for line in reasons)
    assert "truce.status  pending → active" in lines


def test_diff_json_is_what_the_http_api_answers_with_expand_because(store, http):
    at = {"from": "2025-05-01", "to": "2025-09-01", "known_at": "2026-03-01T00:00:00Z"}
    result = parley("diff", "talks", "--from", at["from"], "--to", at["to"], "--known-at", at["known_at"], "--json",
                    "--database", store["database"])

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer == http("/v1/negotiations/talks/diff", **at, expand="because")
    assert {i for change in answer["changes"] for i in change["because"]} <= set(answer["because_events"])


def test_diff_between_recording_times_shows_what_the_record_learned(store):
    result = parley("diff", "talks", "--known-from", BEFORE_EXTENSION, "--known-to", "2026-03-01T00:00:00Z",
                    "--as-of", "2025-09-01", "--database", store["database"])

    assert result.returncode == 0, result.stderr
    assert "truce.status  lapsed → active" in result.stdout
    assert "2025-08-11 · deadline_extended · Deadline truce-expiry extended to 2025-11-10" in result.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--from", "2025-05-13"], "--to"),
        (["--from", "2025-05-13", "--to", "2025-06-01", "--known-from", "2026-01-01T00:00:00Z"], "--known-from"),
        (["--from", "2025-05-32", "--to", "2025-06-01"], "--from"),
        ([], "--from"),
    ],
)
def test_diff_without_one_pair_of_times_is_one_line_naming_the_option(store, args, option):
    line = _one_error_line(parley("diff", "talks", *args, "--database", store["database"]), 2)
    assert option in line


# --- claims and 80 columns, on the shipped US–China dataset ------------------------------------

TALKS = "us-china-trade-2025"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> str:
    database = str(tmp_path_factory.mktemp("cli-shipped") / "parley.db")
    loaded = subprocess.run([sys.executable, "-m", "service", "demo", "load", "--negotiation", TALKS, "--database", database],
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    return database


def test_claims_shows_the_stockholm_extension_dispute_side_by_side(shipped):
    result = parley("claims", TALKS, "--as-of", "2025-08-01", "--database", shipped)

    assert result.returncode == 0, result.stderr
    out = [line.rstrip() for line in result.stdout.splitlines()]
    start = out.index("truce.extension  disputed")
    block = out[start: out.index("", start)]
    header, *rows, settled = block[1:]
    assert header.split() == ["side", "speaker", "said", "on", "source", "grade", "verdict"]
    agreed = next(row for row in rows if "Li Chenggang" in row)
    denied = next(row for row in rows if row.split()[0] == "not_agreed")
    assert agreed.split()[0] == "agreed" and all(s in agreed for s in ("(CN)", "2025-07-29", "Anadolu Agency", "B1"))
    assert all(s in denied for s in ("Scott Bessent (US)", "2025-07-29", "AP (via Lincoln Daily News)", "B1"))
    assert settled.strip() == "not settled by 2025-08-01"


def test_claims_after_the_extension_says_when_and_by_what_it_was_settled(shipped):
    result = parley("claims", TALKS, "--as-of", "2025-09-01", "--status", "confirmed", "--database", shipped)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "truce.extension  confirmed" in out and "us.tariff_on_lapse_pct" not in out
    assert "settled on 2025-08-11 as agreed by:" in out
    assert "2025-08-11 · deadline_extended · " in out and "The White House" in out
    li = next(line for line in out.splitlines() if "Li Chenggang" in line)
    assert li.rstrip().endswith("confirmed")


def test_claims_json_is_what_the_http_api_answers_with_expand_because(shipped):
    settings = Settings(database_url=shipped, run_projections=False, run_webhooks=False, bootstrap_admin=False, public_read=True)
    with TestClient(create_app(settings)) as client:
        api = client.get(f"/v1/negotiations/{TALKS}/claims", params={"as_of": "2025-09-01", "known_at": "2030-01-01T00:00:00Z",
                                                                     "expand": "because", "limit": "1000"}).json()
    result = parley("claims", TALKS, "--as-of", "2025-09-01", "--known-at", "2030-01-01T00:00:00Z", "--json", "--database", shipped)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == api
    assert parley("claims", TALKS, "--status", "rumoured", "--database", shipped).returncode == 2


def test_at_80_columns_every_id_is_printed_whole(shipped):
    narrow = {**_env(), "COLUMNS": "80"}
    answer = json.loads(parley("state", TALKS, "--as-of", "2025-08-01", "--json", "--database", shipped).stdout)
    ids = {m["measure_id"] for d in answer["tariffs"]["directions"] for m in d["measures"]}
    ids |= {m["measure_id"] for m in answer["measures"]["measures"]}
    ids |= {i["issue_id"] for i in answer["issues"]["issues"] if i["status"] not in ("resolved", "dropped")}
    ids |= {d["deadline_id"] for d in answer["deadlines"]["upcoming"]}
    assert max(map(len, ids)) > 40  # a long measure id is among them

    shown = parley("state", TALKS, "--as-of", "2025-08-01", "--database", shipped, env=narrow)
    listed = parley("negotiations", "list", "--database", shipped, env=narrow)
    claims = parley("claims", TALKS, "--as-of", "2025-09-01", "--database", shipped, env=narrow)

    words = {w.strip("│ ") for line in shown.stdout.splitlines() for w in line.split()}
    assert ids - words == set()
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    assert any(TALKS in line.split() for line in (line.replace("│", " ") for line in listed.stdout.splitlines()))
    assert "us.tariff_on_lapse_pct  contradicted" in claims.stdout


# --- timeline --------------------------------------------------------------------------------


def test_timeline_lists_events_in_world_order(store):
    result = parley("timeline", "talks", "--from", "2025-03-01", "--to", "2025-05-13", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.strip()[:4] == "2025"]
    dates = [line.split()[0] for line in rows]
    assert dates == sorted(dates) and dates[0] == "2025-03-03" and dates[-1] == "2025-05-13"
    assert len(rows) == 9
    fentanyl = rows[0]
    assert "measure_changed" in fentanyl and "US adds a 20% fentanyl tariff." in fentanyl and "Federal Register" in fentanyl
    # no summary: a line built from the payload
    assert any("US → CN: us-reciprocal (tariff) in force 34% from 2025-04-05" in row for row in rows)
    assert any("Deadline truce-expiry set: Truce expiry, due 2025-08-12" in row for row in rows)
    statement = next(row for row in rows if "statement_made" in row)
    assert "Bessent: Talks were constructive [retracted]" in statement and "Reuters" in statement
    assert "2025-05-20" not in result.stdout


def test_timeline_json_matches_the_log_in_world_order(store, http):
    result = parley("timeline", "talks", "--json", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert len(items) == 17
    assert [(i["occurred_on"], i["version"]) for i in items] == sorted((i["occurred_on"], i["version"]) for i in items)
    statement = next(i for i in items if i["event_id"] == store["statement"])
    assert statement["retracted_by"] and statement["paraphrase"] == "Talks were constructive"
    api = http("/v1/negotiations/talks/timeline", limit="1000")
    assert items == api["items"]


def test_timeline_range_and_known_at(store):
    result = parley("timeline", "talks", "--from", "2025-08-01", "--json", "--database", store["database"])
    assert [i["type"] for i in json.loads(result.stdout)] == ["deadline_extended", "truce_extended"]
    result = parley("timeline", "talks", "--from", "2025-08-01", "--known-at", BEFORE_EXTENSION, "--json", "--database", store["database"])
    assert json.loads(result.stdout) == []


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["state", "nope"], ["timeline", "nope"], ["state", "nope", "--json"]])
def test_an_unknown_negotiation_is_one_line_and_exit_1(store, command):
    line = _one_error_line(parley(*command, "--database", store["database"]), 1)
    assert "no negotiation 'nope'" in line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["state", "talks", "--as-of", "2025-02-30"], "--as-of"),
        (["state", "talks", "--known-at", "2025-02-01"], "--known-at"),
        (["timeline", "talks", "--to", "soon"], "--to"),
    ],
)
def test_a_bad_date_is_one_line_and_exit_2(store, args, option):
    line = _one_error_line(parley(*args, "--database", store["database"]), 2)
    assert option in line


def test_a_missing_store_is_one_line_and_exit_1_and_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere" / "parley.db"
    for command in (["negotiations", "list"], ["state", "talks"], ["events", "tail"]):
        line = _one_error_line(parley(*command, "--database", str(missing)), 1)
        assert "no store at" in line
    assert not missing.parent.exists()


def test_an_unreadable_store_is_one_line_and_exit_1(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database, not at all" * 100)
    line = _one_error_line(parley("negotiations", "list", "--database", str(garbage)), 1)
    assert "not a database" in line


# --- events tail -----------------------------------------------------------------------------


def test_events_tail_json_prints_the_last_20_envelopes(store):
    result = parley("events", "tail", "--no-follow", "--json", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert store["head"] > 20
    assert printed == _feed(store["database"], 0)[-20:]
    assert [p["position"] for p in printed] == list(range(store["head"] - 19, store["head"] + 1))


def test_events_tail_after_a_position(store):
    result = parley("events", "tail", "--after", "3", "--json", "--database", store["database"])
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == _feed(store["database"], 3)
    assert printed[0]["position"] == 4 and len(printed) == store["head"] - 3
    statement = next(p for p in printed if p["event_id"] == store["statement"])
    assert statement["retracted_by"]


def test_events_tail_text(store):
    result = parley("events", "tail", "--after", str(store["head"] - 7), "--database", store["database"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    assert lines[0].startswith(f"#{store['head'] - 6}") and "talks v17" in lines[0] and "event_retracted" in lines[0]
    assert "Retracts event" in lines[0] and "misattributed" in lines[0]
    assert "other v1" in lines[1] and "Opened: Other talks (EU, CN)" in lines[1]
    assert "deadline_set" in lines[-1] and "Deadline d4 set" in lines[-1]


def _lines(stream: Any) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "terminate"])
def test_events_tail_follow_prints_events_appended_after_it_started(tmp_path, stop):
    database = str(tmp_path / "parley.db")
    log = open_log(Settings(database_url=database))
    try:
        log.record("live", [NegotiationOpened(occurred_on=D(2025, 1, 1), title="Live", parties=("US", "CN"))], principal="t", request_id="t")
        follower = subprocess.Popen(
            [sys.executable, "-c", HARNESS, "events", "tail", "--follow", "--json", "--database", database],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            out = _lines(follower.stdout)
            first = json.loads(out.get(timeout=30))
            assert (first["negotiation_id"], first["type"], first["position"]) == ("live", "negotiation_opened", 1)
            appended = log.record(
                "live", [DeadlineSet(occurred_on=D(2025, 2, 1), deadline_id="d", title="Later", due_on=D(2025, 3, 1))],
                principal="t", request_id="t",
            )
            second = json.loads(out.get(timeout=30))
            assert second == _as_json(with_corrections(log, appended[:1])[0])  # as GET /v1/events gives it
            assert second["title"] == "Later" and second["position"] == 2
        finally:
            follower.send_signal(stop)
            follower.wait(20)
        assert follower.returncode == 0
        stderr = follower.stderr.read() if follower.stderr else ""
        assert "Traceback" not in stderr
    finally:
        log.close()
