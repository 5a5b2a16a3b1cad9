"""Served processes: metrics shared by several processes add up; /ready follows a database that goes away and comes back."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.process import create_key, free_port, log_lines, start_server, stop_server
from tests.conftest import emptied_postgres

pytestmark = pytest.mark.slow


def samples(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{base_url}/metrics", timeout=30)
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(response.text) for s in f.samples
    }


def requests(found: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str, method: str, status: int) -> float:
    return found.get(("parley_http_requests_total", frozenset({"route": route, "method": method, "status": str(status)}.items())), 0.0)


def test_processes_sharing_a_metrics_dir_add_up_their_counts(database_url, tmp_path):
    """Two servers on one directory stand in for the workers of one server: any scrape sees both."""
    shared = {"PARLEY_METRICS_DIR": str(tmp_path / "metrics"), "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    admin = create_key(database_url, "admin", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    first, first_url = start_server(database_url, tmp_path / "first.log", env=shared)
    try:
        second, second_url = start_server(
            database_url, tmp_path / "second.log", env={**shared, "PARLEY_RUN_PROJECTIONS": "0", "PARLEY_RUN_WEBHOOKS": "0"}
        )
        try:
            opened = httpx.post(f"{first_url}/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]},
                                headers=headers, timeout=30)
            assert opened.status_code == 201, opened.text
            for _ in range(2):
                assert httpx.get(f"{first_url}/v1/negotiations/talks", headers=headers, timeout=30).status_code == 200
            for _ in range(3):
                assert httpx.get(f"{second_url}/v1/negotiations/talks", headers=headers, timeout=30).status_code == 200
            appended = httpx.post(f"{second_url}/v1/negotiations/talks/events", headers=headers, timeout=30, json={
                "type": "deadline_set", "occurred_on": "2025-05-12", "deadline_id": "expiry", "title": "Expiry", "due_on": "2025-08-12",
            })
            assert appended.status_code == 201, appended.text

            for url in (first_url, second_url):
                found = samples(url)
                assert requests(found, "/v1/negotiations/{negotiation_id}", "GET", 200) == 5
                assert requests(found, "/v1/negotiations", "POST", 201) == 1
                assert requests(found, "/v1/negotiations/{negotiation_id}/events", "POST", 201) == 1
                assert found[("parley_events_appended_total", frozenset())] == 2
            serving = {line["pid"] for name in ("first", "second") for line in log_lines(tmp_path / f"{name}.log", "request")}
            assert len(serving) == 2, "each server's requests come from its own worker process"
            assert {p.name.split("_")[-1] for p in (tmp_path / "metrics").glob("counter_*.db")} == {f"{pid}.db" for pid in serving}
        finally:
            stop_server(second)
    finally:
        stop_server(first)


class Outage:
    """A TCP relay between a served process and PostgreSQL that can be cut (connections reset, new ones refused) and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._guard = threading.Lock()

    def url_for(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{self.port}"))

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._guard:
            if self._listener is not None:
                try:  # wakes the thread blocked in accept(), which close() alone would leave accepting
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(self.upstream)
            with self._guard:
                self._open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def postgres_url() -> str:
    """An unreachable store is a network outage: PostgreSQL only."""
    return emptied_postgres()


@pytest.fixture
def outage(postgres_url: str) -> Iterator[Outage]:
    parts = urlsplit(postgres_url)
    relay = Outage((parts.hostname or "127.0.0.1", parts.port or 5432))
    relay.restore()
    yield relay
    relay.cut()


def wait_for(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_ready_is_503_while_the_database_is_unreachable_and_200_once_it_is_back(postgres_url, outage, tmp_path: Path):
    through = outage.url_for(postgres_url)
    process, base_url = start_server(through, tmp_path / "server.log", env={"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")})
    try:
        assert httpx.get(f"{base_url}/ready", timeout=30).status_code == 200

        outage.cut()
        down = wait_for(lambda: (r := httpx.get(f"{base_url}/ready", timeout=30)).status_code == 503 and r)
        assert down, "never 503 while the database was unreachable"
        assert down.headers["content-type"].startswith("application/problem+json")
        assert int(down.headers["retry-after"]) > 0
        assert down.json()["status"] == 503
        assert httpx.get(f"{base_url}/health", timeout=30).status_code == 200  # liveness stays up: restarting would not help
        assert samples(base_url)[("parley_store_up", frozenset())] == 0

        outage.restore()
        assert wait_for(lambda: httpx.get(f"{base_url}/ready", timeout=30).status_code == 200), "never ready again"
        assert samples(base_url)[("parley_store_up", frozenset())] == 1
    finally:
        stop_server(process)
