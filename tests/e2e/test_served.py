"""Against a real `parley serve` process: concurrency, durability and the CLI."""

from __future__ import annotations

import concurrent.futures as futures
import json
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support.process import create_key, start_server, stop_server
from tests.api.conftest import deadline

pytestmark = pytest.mark.slow


def _open(client: httpx.Client, negotiation_id: str = "talks") -> None:
    response = client.post("/v1/negotiations", json={"id": negotiation_id, "title": "Talks", "parties": ["US", "CN"]})
    assert response.status_code == 201, response.text


def test_twenty_concurrent_appends_with_one_if_match_give_one_201(served):
    with served.client() as client:
        _open(client)

    def append(n: int) -> int:
        with served.client() as client:
            return client.post("/v1/negotiations/talks/events", json=deadline(f"d{n}"), headers={"If-Match": '"1"'}).status_code

    with futures.ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(append, range(20)))
    assert statuses == [201] + [409] * 19
    with served.client() as client:
        assert client.get("/v1/negotiations/talks").json()["version"] == 2


def test_eight_writers_append_1600_events_with_contiguous_versions(served):
    with served.client() as client:
        _open(client)

    def writer(w: int) -> list[int]:
        with served.client() as client:
            codes = []
            for i in range(200):
                response = client.post("/v1/negotiations/talks/events", json=deadline(f"w{w}-{i}"))
                codes.append(response.status_code)
            return codes

    with futures.ThreadPoolExecutor(8) as pool:
        codes = [code for batch in pool.map(writer, range(8)) for code in batch]
    assert codes.count(201) == 1600, {c: codes.count(c) for c in set(codes)}
    events, cursor = [], None
    with served.client() as client:
        while True:
            page = client.get("/v1/negotiations/talks/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
            events += page["items"]
            cursor = page["next"]
            if not cursor:
                break
    versions = [e["version"] for e in events]
    assert versions == list(range(1, 1602))
    positions = [e["position"] for e in events]
    assert all(a < b for a, b in zip(positions, positions[1:]))
    assert len({e["event_id"] for e in events}) == 1601


def test_an_acknowledged_event_survives_sigkill(served, tmp_path):
    with served.client() as client:
        _open(client)
        response = client.post("/v1/negotiations/talks/events", json=deadline("survivor"))
        assert response.status_code == 201
        event_id = response.json()["events"][0]["event_id"]
    served.process.send_signal(signal.SIGKILL)
    served.process.wait(10)
    process, base_url = start_server(served.database_url, tmp_path / "second.log")
    try:
        got = httpx.get(f"{base_url}/v1/events/{event_id}", headers={"Authorization": f"Bearer {served.admin_key}"})
        assert got.status_code == 200
        assert got.json()["deadline_id"] == "survivor"
    finally:
        stop_server(process)


def test_idempotent_retries_over_http_store_one_event(served):
    with served.client() as client:
        _open(client)
        answers = [
            client.post("/v1/negotiations/talks/events", json=deadline(), headers={"Idempotency-Key": "once"}) for _ in range(5)
        ]
        assert {a.status_code for a in answers} == {201}
        assert client.get("/v1/negotiations/talks").json()["event_count"] == 2


def test_cli_creates_and_revokes_keys_that_the_server_honours(served):
    secret = create_key(served.database_url, "reuters-desk", "reporter")
    with served.client(secret) as client:
        _open(client)
        opened = client.get("/v1/negotiations/talks/events").json()["items"][0]
        assert opened["recorded_by"] == "reuters-desk"
    subprocess.run(
        [sys.executable, "-m", "service", "keys", "revoke", "reuters-desk", "--database", served.database_url],
        check=True, capture_output=True,
    )
    listing = subprocess.run(
        [sys.executable, "-m", "service", "keys", "list", "--database", served.database_url],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "reuters-desk" in listing and secret not in listing
    as_json = subprocess.run(
        [sys.executable, "-m", "service", "keys", "list", "--json", "--database", served.database_url],
        check=True, capture_output=True, text=True,
    ).stdout
    desk = next(k for k in json.loads(as_json) if k["name"] == "reuters-desk")
    assert desk["revoked_at"] and desk["role"] == "reporter" and "key" not in desk
    with served.client(secret) as client:  # at once: the CLI's revocation changed the token the server checks
        assert client.get("/v1/events").status_code == 401


def test_request_logs_are_json_lines_with_request_id_and_no_secret(served):
    with served.client() as client:
        _open(client)
        rid = client.post("/v1/negotiations/talks/events", json=deadline(), headers={"X-Request-ID": "trace-42"}).headers["x-request-id"]
    assert rid == "trace-42"
    served.process.terminate()
    served.process.wait(10)
    lines = [json.loads(line) for line in served.log_path.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    mine = [line for line in requests if line["request_id"] == "trace-42"]
    assert mine and mine[0]["principal"] == "admin" and mine[0]["negotiation_id"] == "talks"
    assert mine[0]["status"] == 201 and mine[0]["position"] >= 2 and "duration_ms" in mine[0]
    assert served.admin_key not in served.log_path.read_text()
