"""`parley import` and `parley demo load` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import httpx
import pytest

from events.datasets import load
from service.stores import open_log
from service.settings import Settings
from tests.api.conftest import deadline, measure
from tests.support.process import create_key

pytestmark = pytest.mark.slow


def parley(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True, input=stdin, timeout=300)


def _count(database_url: str, negotiation_id: str) -> int:
    log = open_log(Settings(database_url=database_url))
    try:
        return log.negotiation(negotiation_id).event_count
    finally:
        log.close()


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


OPEN = {"type": "negotiation_opened", "occurred_on": "2025-01-01", "title": "Talks", "parties": ["US", "CN"]}


def test_a_file_with_a_bad_line_stores_nothing_and_names_the_line(database_url, tmp_path):
    path = _write(tmp_path / "in.jsonl", [OPEN, deadline("a"), {**measure(), "rate_pct": "ten"}, deadline("b")])
    out = parley("import", str(path), "--negotiation", "talks", "--database", database_url)
    assert out.returncode == 1
    assert "line 3: rate_pct" in out.stderr and "Traceback" not in out.stderr
    log = open_log(Settings(database_url=database_url))
    try:
        assert log.head() == 0
    finally:
        log.close()
    skipped = parley("import", str(path), "--negotiation", "talks", "--skip-invalid", "--json", "--database", database_url)
    assert skipped.returncode == 0, skipped.stderr
    report = json.loads(skipped.stdout)
    assert (report["stored"], report["skipped_invalid"]) == (3, 1)


def test_importing_the_same_file_twice_stores_each_event_once(database_url, tmp_path):
    path = _write(tmp_path / "in.jsonl", [OPEN, deadline("a"), deadline("a"), measure()])
    first = json.loads(parley("import", str(path), "--negotiation", "talks", "--json", "--database", database_url).stdout)
    second = json.loads(parley("import", "-", "--negotiation", "talks", "--json", "--database", database_url, stdin=path.read_text()).stdout)
    assert (first["stored"], second["stored"], second["already_there"]) == (4, 0, 4)
    assert _count(database_url, "talks") == 4  # two identical lines are two events, both kept once


def test_import_into_an_existing_negotiation_without_an_opening_line(database_url, tmp_path):
    parley("import", str(_write(tmp_path / "a.jsonl", [OPEN])), "--negotiation", "talks", "--database", database_url)
    out = parley("import", str(_write(tmp_path / "b.jsonl", [deadline("x")])), "--negotiation", "talks", "--database", database_url)
    assert out.returncode == 0, out.stderr
    assert _count(database_url, "talks") == 2
    missing = parley("import", str(tmp_path / "b.jsonl"), "--negotiation", "nowhere", "--database", database_url)
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr


def test_import_through_a_server(served, tmp_path):
    path = _write(tmp_path / "in.jsonl", [OPEN, deadline("a"), measure()])
    for _ in range(2):
        out = parley("import", str(path), "--negotiation", "remote", "--url", served.base_url, "--key", served.admin_key)
        assert out.returncode == 0, out.stderr
    got = httpx.get(f"{served.base_url}/v1/negotiations/remote", headers={"Authorization": f"Bearer {served.admin_key}"})
    assert got.json()["event_count"] == 3
    events = httpx.get(f"{served.base_url}/v1/negotiations/remote/events", headers={"Authorization": f"Bearer {served.admin_key}"})
    assert [e["recorded_by"] for e in events.json()["items"]] == ["admin"] * 3


def test_demo_load_is_idempotent_and_only_if_empty_when_asked(database_url):
    first = json.loads(parley("demo", "load", "--json", "--database", database_url).stdout)
    second = json.loads(parley("demo", "load", "--json", "--database", database_url).stdout)
    stored = {r["negotiation_id"]: r["stored"] for r in first}
    assert stored == {name: len(load(name)) for name in ("us-china-trade-2025", "us-eu-trade-2025")}
    assert [r["stored"] for r in second] == [0, 0]
    assert parley("demo", "load", "--if-empty", "--database", database_url).returncode == 0
    assert _count(database_url, "us-china-trade-2025") == stored["us-china-trade-2025"]
    unknown = parley("demo", "load", "--negotiation", "nope", "--database", database_url)
    assert unknown.returncode == 2 and "us-eu-trade-2025" in unknown.stderr


def test_the_dataset_loads_from_an_installed_wheel(tmp_path):
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(root)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("parley-*.whl"))
    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    # Dependencies come from this test run's environment (plain path entry: its editable finder stays off).
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "parley-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    check = (
        "import events.datasets, events, sys; "
        "assert 'site-packages' in events.__file__, events.__file__; "
        "print(len(events.datasets.load('us-china-trade-2025')))"
    )
    out = subprocess.run([str(python), "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(load("us-china-trade-2025")) >= 40
    db = tmp_path / "demo.db"
    loaded = subprocess.run([str(tmp_path / "venv" / "bin" / "parley"), "demo", "load", "--json", "--database", str(db)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert [r["stored"] >= 40 for r in json.loads(loaded.stdout)] == [True, True]


def test_audit_verify_proves_the_log_extends_a_kept_checkpoint(tmp_path):
    db, key = str(tmp_path / "p.db"), {"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "k")}
    env = {**__import__("os").environ, **key}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service", *args, "--database", db], capture_output=True, text=True, env=env, timeout=120)

    assert run("demo", "load").returncode == 0
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(run("audit", "checkpoint").stdout)
    assert run("audit", "verify", "--checkpoint", str(checkpoint)).returncode == 0
    log = open_log(Settings(database_url=db))
    try:
        log.record("us-china-trade-2025", [load("us-china-trade-2025")[5]], principal="later", request_id="r")
    finally:
        log.close()
    assert run("audit", "verify", "--checkpoint", str(checkpoint)).returncode == 0  # the log grew: still extends it
    forged = json.loads(checkpoint.read_text()) | {"hash": "f" * 64}
    checkpoint.write_text(json.dumps(forged))
    failed = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert failed.returncode == 1 and "signature" in failed.stderr


def test_verify_against_a_checkpoint_catches_a_rewritten_and_rechained_history(tmp_path):
    import os
    import sqlite3
    import uuid as uuidlib

    from events.store import GENESIS, link

    db = str(tmp_path / "p.db")
    env = {**os.environ, "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "k")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service", *args, "--database", db], capture_output=True, text=True, env=env, timeout=120)

    assert run("demo", "load").returncode == 0
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(run("audit", "checkpoint").stdout)
    # Someone with database access rewrites what event 2 says (not the envelope the index repeats) and recomputes every hash after it.
    conn = sqlite3.connect(db)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    (state,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 2").fetchone()
    payload = state.index(b'"event":')
    rewritten = state[:payload] + state[payload:].replace(b"25", b"26")
    assert rewritten != state
    conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 2", (rewritten,))
    prev = GENESIS
    for position, oid, version, topic, state in conn.execute(
        "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
    ).fetchall():
        prev = link(prev, position, uuidlib.UUID(oid), version, topic, bytes(state))
        conn.execute("UPDATE parley_event_index SET hash = ? WHERE position = ?", (prev, position))
    conn.commit()
    conn.close()
    assert run("audit", "verify").returncode == 0  # the chain alone was re-made consistent
    caught = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert caught.returncode == 1 and "rewritten" in caught.stderr


def _one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def _without_key(*args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PARLEY_KEY"} | {"COLUMNS": "80", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True, env=env, timeout=120)


def test_import_through_a_server_says_in_one_line_what_is_wrong_and_how_to_fix_it(served, tmp_path):
    path = str(_write(tmp_path / "in.jsonl", [OPEN, deadline("a")]))
    remote = ("import", path, "--negotiation", "remote", "--url", served.base_url)

    no_key = _one_error_line(_without_key(*remote))
    wrong_key = _one_error_line(_without_key(*remote, "--key", "pk_not-a-key"))
    reader = create_key(served.database_url, "desk", "reader")
    not_allowed = _one_error_line(_without_key(*remote, "--key", reader))

    assert no_key == "error: no access key: pass --key or set PARLEY_KEY"
    assert wrong_key.startswith("error: the server refused the key (401 unknown or revoked): ")
    assert "pass a valid --key or set PARLEY_KEY" in wrong_key
    assert not_allowed.startswith("error: the key may not do this (403): ")


def test_import_to_a_server_that_is_not_there_names_the_address(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = str(_write(tmp_path / "in.jsonl", [OPEN]))

    refused = _one_error_line(_without_key("import", path, "--negotiation", "x", "--url", f"http://127.0.0.1:{port}", "--key", "pk_x"))
    not_a_url = _one_error_line(_without_key("import", path, "--negotiation", "x", "--url", "127.0.0.1:8000", "--key", "pk_x"))

    assert refused == f"error: cannot reach http://127.0.0.1:{port}: is `parley serve` running there? (check --url)"
    assert not_a_url.startswith("error: --url '127.0.0.1:8000' is not a server address")
