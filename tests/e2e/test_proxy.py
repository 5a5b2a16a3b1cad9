"""The shipped nginx config (deploy/nginx.conf) in front of a served Parley: per-address caps, problem bodies, quiet logs."""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.process import create_key, free_port, start_server, stop_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (.ci/run installs Debian's)"),
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class Proxy:
    def __init__(self, base_url: str, access_log: Path, admin: str) -> None:
        self.base_url = base_url
        self.port = int(base_url.rsplit(":", 1)[1])
        self.access_log = access_log
        self.admin = admin

    def raw(self, request: bytes, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=(source, 0)) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    database = str(tmp_path / "parley.db")
    admin = create_key(database, "admin", "admin")
    env = {"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "PARLEY_RATE_LIMIT": "0"}
    server, parley_url = start_server(database, tmp_path / "server.log", env=env)
    port = free_port()
    config = (DEPLOY / "nginx.conf").read_text()
    config = config.replace("server api:8000", f"server {parley_url.removeprefix('http://')}")
    config = config.replace("listen 80;", f"listen 127.0.0.1:{port};")
    config = config.replace("/dev/stdout", str(tmp_path / "access.log")).replace("/dev/stderr", str(tmp_path / "error.log"))
    config = f"pid {tmp_path / 'nginx.pid'};\n" + config
    (tmp_path / "nginx.conf").write_text(config)
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert nginx.poll() is None and time.monotonic() < deadline, (tmp_path / "error.log").read_text()
        time.sleep(0.1)
    try:
        yield Proxy(base_url, tmp_path / "access.log", admin)
    finally:
        nginx.terminate()
        nginx.wait(10)
        stop_server(server)


def _problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, object]:
    assert headers["content-type"].startswith("application/problem+json"), (status, headers, body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


def test_the_access_log_never_holds_a_query_string_so_never_a_calendar_key(proxy):
    response = httpx.get(f"{proxy.base_url}/v1/negotiations?key=pk_secret-calendar-key&limit=5")
    assert response.status_code == 401
    time.sleep(0.2)
    logged = proxy.access_log.read_text()
    assert '"path":"/v1/negotiations"' in logged
    assert "pk_secret-calendar-key" not in logged and "limit=5" not in logged


@pytest.mark.parametrize(
    ("case", "request_bytes", "status"),
    [
        ("HTTP/1.1 without Host", b"GET /v1/negotiations HTTP/1.1\r\n\r\n", 400),
        ("request line over 16 KiB", b"GET /v1/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: p\r\n\r\n", 414),
        ("a header over 16 KiB", b"GET /health HTTP/1.1\r\nHost: p\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n", 431),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_protocol_refusals_are_problem_documents(proxy, case, request_bytes, status):
    got, headers, body = proxy.raw(request_bytes)
    assert got == status, (case, body)
    _problem(status, headers, body)


def test_one_address_with_slow_bodies_gets_429_past_its_share_while_another_reads(proxy):
    """500 slow-body POSTs and 1,100 idle sockets from 127.0.0.2; a reader on 127.0.0.1 reads once a second."""
    held: list[socket.socket] = []
    refused: list[int] = []
    head = (f"POST /v1/negotiations HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {proxy.admin}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{").encode()

    def flood() -> None:
        for n in range(1600):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=("127.0.0.2", 0))
            held.append(sock)
            if n >= 1100:
                sock.sendall(head)
        time.sleep(1)
        for sock in held[1100:]:
            sock.setblocking(False)
            try:
                answer = sock.recv(4096)
            except BlockingIOError:
                continue
            match = re.match(rb"HTTP/1.1 (\d+)", answer)
            if match:
                refused.append(int(match.group(1)))

    attacker = threading.Thread(target=flood)
    seconds: list[float] = []
    failures: list[str] = []
    try:
        with httpx.Client(base_url=proxy.base_url, headers={"Authorization": f"Bearer {proxy.admin}"}, timeout=10) as reader:
            attacker.start()
            for _ in range(15):
                started = time.monotonic()
                try:
                    codes = (httpx.get(f"{proxy.base_url}/health", timeout=10).status_code, reader.get("/v1/negotiations").status_code)
                    if codes != (200, 200):
                        failures.append(str(codes))
                except httpx.TransportError as error:
                    failures.append(type(error).__name__)
                seconds.append(time.monotonic() - started)
                time.sleep(max(0.0, 1 - seconds[-1]))
            attacker.join()
    finally:
        for sock in held:
            sock.close()
    p99 = statistics.quantiles(seconds, n=100, method="inclusive")[98]
    print(f"\nthrough nginx: {len(held)} sockets from one address, {len(refused)} slow bodies answered at once "
          f"({sorted(set(refused))}); honest reads p50 {statistics.median(seconds) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    assert failures == []
    assert refused and set(refused) == {429}
    assert len(refused) >= 500 - 64
