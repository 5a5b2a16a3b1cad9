"""`parley serve --workers N` against a real store: workers share everything through it, and SIGTERM drains."""

from __future__ import annotations

import concurrent.futures as futures
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process import create_key, free_port, log_lines, start_server, stop_server
from tests.api.conftest import deadline

pytestmark = pytest.mark.slow

# Small pools: two workers x three pools per test stay well below PostgreSQL's max_connections.
SMALL_POOLS = {"PARLEY_POOL_SIZE": "2", "PARLEY_POOL_MAX_OVERFLOW": "4"}


def _fresh(base_url: str, key: str, method: str, path: str, request_id: str, headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
    """One request on a new connection: new connections are spread over the workers."""
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": request_id, **(headers or {})}
    return httpx.request(method, f"{base_url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def _served_by(log_path: Path) -> dict[str, int]:
    """request_id -> pid of the worker process that answered it, from the JSON request lines.

    Two workers write to one file: a line the other worker's write cut into is passed over.
    """
    return {line["request_id"]: line["pid"] for line in log_lines(log_path, "request")}  # type: ignore[misc]


def test_two_workers_take_cli_options_share_keys_and_append_with_contiguous_versions(database_url, tmp_path):
    admin = create_key(database_url, "admin", "admin")
    port = free_port()
    # The environment names another store; the CLI's --database must win in every worker.
    decoy = str(tmp_path / "decoy.db")
    serve = [sys.executable, "-m", "service", "serve", "--workers", "2", "--port", str(port), "--database", database_url]
    log_path = tmp_path / "server.log"
    env = {**SMALL_POOLS, "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    process, base_url = start_server(decoy, log_path, port=port, env=env, command=serve)
    try:
        created = _fresh(base_url, admin, "POST", "/v1/keys", "create-key", json={"name": "desk", "role": "reporter"})
        assert created.status_code == 201, created.text
        desk = created.json()["key"]
        opened = _fresh(base_url, desk, "POST", "/v1/negotiations", "open", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]})
        assert opened.status_code == 201, opened.text

        def append(n: int) -> int:
            return _fresh(base_url, desk, "POST", "/v1/negotiations/talks/events", f"append-{n}", json=deadline(f"d{n}")).status_code

        def append_if_at_41(n: int) -> int:
            return _fresh(
                base_url, desk, "POST", "/v1/negotiations/talks/events", f"if-match-{n}", json=deadline(f"m{n}"), headers={"If-Match": '"41"'},
            ).status_code

        with futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(append, range(40)))
            assert statuses == [201] * 40
            # Each worker's cached version of the stream may be behind the other's: If-Match still holds once.
            racing = sorted(pool.map(append_if_at_41, range(12)))
        assert racing == [201] + [409] * 11
        events = _fresh(base_url, desk, "GET", "/v1/negotiations/talks/events?limit=1000", "list").json()["items"]
        # ids the server makes itself (no X-Request-ID sent), each on a new connection: never the same twice, in any worker
        generated = [httpx.get(f"{base_url}/health", timeout=30).headers["x-request-id"] for _ in range(40)]
    finally:
        assert stop_server(process) == 0
    assert len(set(generated)) == 40 and all(len(request_id) == 32 for request_id in generated)
    served = _served_by(log_path)
    assert len({served.get(request_id) for request_id in generated} - {None}) == 2, "both workers made ids"
    assert [e["version"] for e in events] == list(range(1, 43))
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions))
    assert {e["recorded_by"] for e in events} == {"desk"}
    served_by = _served_by(log_path)
    appenders = {served_by.get(f"append-{n}") for n in range(40)} - {None}
    assert len(appenders) == 2, "new connections should reach both workers"
    assert appenders - {served_by["create-key"]}, "the key created in one worker was used in the other"
    assert not Path(decoy).exists()


def test_a_request_in_flight_when_sigterm_arrives_completes_and_the_server_exits_0(database_url, tmp_path):
    """A read waiting for the deadlines view (min_position) is answered after SIGTERM, once a projector catches up."""
    admin = create_key(database_url, "admin", "admin")
    env = {
        **SMALL_POOLS,
        "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        "PARLEY_RUN_PROJECTIONS": "0",  # nothing in the server moves the view: the read waits until we say
        "PARLEY_MIN_POSITION_WAIT": "60",
        "PARLEY_SHUTDOWN_GRACE": "60",
    }
    process, base_url = start_server(database_url, tmp_path / "server.log", env=env, workers=2)
    projector = None
    try:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=90) as client:
            assert client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).status_code == 201
            position = client.post("/v1/negotiations/talks/events", json=deadline("truce-expiry")).json()["events"][0]["position"]
        with futures.ThreadPoolExecutor(1) as pool, httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=90) as slow:
            waiting = pool.submit(slow.get, "/v1/deadlines", params={"min_position": position})
            time.sleep(1.0)  # the request has reached a worker and waits for the view
            assert not waiting.done(), waiting.result().text
            process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert process.poll() is None, "the server should wait for the request in flight"
            projector = subprocess.Popen(
                [sys.executable, "-m", "service", "project", "--database", database_url],
                env={**os.environ, "PARLEY_LOG_FORMAT": "json"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            answer = waiting.result(timeout=60)
        assert answer.status_code == 200, answer.text
        assert [row["deadline_id"] for row in answer.json()["items"]] == ["truce-expiry"]
        assert process.wait(30) == 0
    finally:
        if projector is not None:
            projector.terminate()
            projector.wait(20)
        stop_server(process)


def test_a_revoked_key_is_refused_by_every_worker_at_once(database_url, tmp_path):
    """Both workers have just let the key in; the revocation answered by one, the next request to either is a 401."""
    admin = create_key(database_url, "admin", "admin")
    log_path = tmp_path / "server.log"
    env = {**SMALL_POOLS, "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "PARLEY_RATE_LIMIT": "0"}
    process, base_url = start_server(database_url, log_path, env=env, workers=2)
    try:
        refused_late = []
        for round_ in range(3):
            created = _fresh(base_url, admin, "POST", "/v1/keys", f"create-{round_}", json={"name": f"desk-{round_}", "role": "reader"})
            assert created.status_code == 201, created.text
            key, key_id = created.json()["key"], created.json()["id"]
            with futures.ThreadPoolExecutor(8) as pool:  # new connections land on both workers
                warm = list(pool.map(lambda n: _fresh(base_url, key, "GET", "/v1/negotiations", f"warm-{round_}-{n}"), range(16)))
            assert {r.status_code for r in warm} == {200}
            served = _served_by(log_path)
            assert len({served.get(f"warm-{round_}-{n}") for n in range(16)} - {None}) == 2, "both workers must have let the key in"
            revoked = _fresh(base_url, admin, "DELETE", f"/v1/keys/{key_id}", f"revoke-{round_}")
            assert revoked.status_code == 200, revoked.text
            with futures.ThreadPoolExecutor(8) as pool:
                after = list(pool.map(lambda n: _fresh(base_url, key, "GET", "/v1/negotiations", f"after-{round_}-{n}"), range(16)))
            refused_late += [r.headers.get("x-request-id") for r in after if r.status_code != 401]
        assert refused_late == [], f"answered with a revoked key: {refused_late}"
    finally:
        stop_server(process)


def test_the_workers_log_lines_never_cut_into_each_other_when_unbuffered(tmp_path):
    """Two workers share stderr under PYTHONUNBUFFERED=1 (as the image runs them): every line is whole JSON."""
    database = str(tmp_path / "parley.db")
    admin = create_key(database, "admin", "admin")
    log_path = tmp_path / "server.log"
    env = {"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "PARLEY_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1"}
    process, base_url = start_server(database, log_path, env=env, workers=2)
    try:
        with futures.ThreadPoolExecutor(8) as pool:
            answered = list(pool.map(lambda n: _fresh(base_url, admin, "GET", "/v1/negotiations", f"line-{n}").status_code, range(400)))
        assert set(answered) == {200}
    finally:
        stop_server(process)
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    broken = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            broken.append(line)
    assert broken == [], f"{len(broken)} of {len(lines)} lines cut into: {broken[:3]}"
    assert len(_served_by(log_path)) >= 400
