"""`parley webhooks listen` against a served Parley: it registers a loopback listener, verifies and prints what arrives,
and removes its webhook when stopped; loopback stays refused to every other webhook, and to listeners asked for from afar."""

from __future__ import annotations

import datetime as dt
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.process import create_key, free_port

pytestmark = pytest.mark.slow

REGISTERED = re.compile(r"Registered webhook (wh_[0-9a-f]+)")


class Listener:
    """`python -m service webhooks listen` as a child process, its output read line by line as it comes."""

    def __init__(self, base_url: str, key: str, *args: str) -> None:
        self.port = free_port()
        env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "webhooks", "listen", "--url", base_url, "--key", key, "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env,
        )
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        for name, stream in (("out", self.process.stdout), ("err", self.process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put((name, line.rstrip("\n")))

    def wait_for(self, pattern: str, stream: str = "out", timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                name, line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append((name, line))
            if name == stream and (found := re.search(pattern, line)):
                return found
        pytest.fail(f"no line matching {pattern!r} on std{stream}; saw {self.seen}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        return self.process.wait(30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    started: list[Listener] = []
    yield started
    for listener in started:
        listener.kill()


def test_listen_receives_verifies_and_prints_a_webhook_test_message_then_removes_its_webhook(served, listeners):
    listener = Listener(served.base_url, served.admin_key)
    listeners.append(listener)
    webhook_id = listener.wait_for(REGISTERED.pattern).group(1)
    secret = listener.wait_for(r"Signing secret \(shown once\): (whsec_\S+)").group(1)
    with served.client() as client:
        registered = client.get(f"/v1/webhooks/{webhook_id}").json()
        assert registered["listener"] is True and registered["url"] == f"http://127.0.0.1:{listener.port}/"
        assert secret and client.post(f"/v1/webhooks/{webhook_id}/test").status_code == 202
        line = listener.wait_for(r"✓ verified webhook\.test .*").group(0)
        assert webhook_id in line
        deadline = time.monotonic() + 10  # the line may be printed before the sender has recorded the answer
        while (deliveries := client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["items"])[0]["status"] == "delivering":
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.05)
        assert [(d["type"], d["status"], d["last_status"]) for d in deliveries] == [("webhook.test", "delivered", 204)]

        assert listener.stop(signal.SIGINT) == 0
        listener.wait_for(f"Removed webhook {webhook_id}")
        assert client.get(f"/v1/webhooks/{webhook_id}").status_code == 404


def test_listen_json_prints_raw_bodies_and_answers_401_to_a_forged_message(served, listeners):
    listener = Listener(served.base_url, served.admin_key, "--json", "--events", "webhook.*")
    listeners.append(listener)
    webhook_id = listener.wait_for(REGISTERED.pattern, stream="err").group(1)
    now = dt.datetime.now(dt.UTC)
    body = msgspec.json.encode({"type": "webhook.test", "timestamp": now.isoformat(), "data": {"webhook_id": webhook_id}})
    forged = Webhook("whsec_" + "A" * 43 + "=").sign("forged-1", now, body.decode())
    answer = httpx.post(f"http://127.0.0.1:{listener.port}/", content=body, headers={
        "webhook-id": "forged-1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": forged})
    assert answer.status_code == 401
    listener.wait_for(r"✗ not verified forged-1", stream="err")

    with served.client() as client:
        assert client.post(f"/v1/webhooks/{webhook_id}/test").status_code == 202
        raw = listener.wait_for(r"^\{.*\}$").group(0)
        message = msgspec.json.decode(raw)
        assert message["type"] == "webhook.test" and message["data"] == {"webhook_id": webhook_id}
        assert not any(name == "out" and "forged" in line for name, line in listener.seen)  # only verified bodies on stdout

        assert listener.stop(signal.SIGTERM) == 0
        assert client.get(f"/v1/webhooks/{webhook_id}").status_code == 404


def test_loopback_is_refused_to_a_plain_webhook_and_to_a_listener_asked_for_through_a_proxy(served):
    port = free_port()
    with served.client() as client:
        plain = client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/"})
        assert plain.status_code == 422 and plain.json()["errors"][0]["field"] == "url"
        elsewhere = client.post("/v1/webhooks", json={"url": "http://192.168.1.20:8787/", "listener": True})
        assert elsewhere.status_code == 422 and elsewhere.json()["errors"][0]["field"] == "url"
        proxied = client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/", "listener": True},
                              headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 422 and proxied.json()["errors"][0]["field"] == "listener"
        assert client.get("/v1/webhooks").json()["items"] == []


def test_listen_with_a_key_that_may_not_manage_webhooks_says_so_in_one_line(served):
    reader = create_key(served.database_url, "reader", "reader")
    done = subprocess.run([sys.executable, "-m", "service", "webhooks", "listen", "--url", served.base_url, "--key", reader],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "(403)" in done.stderr, done.stderr
    with served.client() as client:
        assert client.get("/v1/webhooks").json()["items"] == []
