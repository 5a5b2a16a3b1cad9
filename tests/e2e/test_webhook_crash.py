"""Senders killed with SIGKILL: every message still arrives, and what a dead sender had claimed arrives within seconds."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from events.application import utcnow
from events.payloads import DeadlineSet, NegotiationOpened
from service.stores import open_log
from service.settings import Settings
from service.signing import Signer
from service.webhooks import open_webhooks
from tests.api.conftest import deadline
from tests.api.test_webhooks import Receiver
from tests.support.process import create_key, kill_server, start_server

pytestmark = pytest.mark.slow


def test_sigkilled_senders_lose_nothing_and_duplicates_are_identical(database_url, tmp_path):
    seed = base64.b64encode(os.urandom(32)).decode()
    receiver = Receiver()
    receiver.start()
    log = open_log(Settings(database_url=database_url))
    signer = Signer.load(seed, str(tmp_path / "unused"))
    hooks = open_webhooks(log, secret_key=signer.derive_key("parley webhook secrets"), clock=utcnow, allow_hosts=frozenset({"127.0.0.1"}))
    env = {
        **os.environ, "PARLEY_DATABASE_URL": database_url, "PARLEY_SIGNING_KEY": seed, "PARLEY_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "PARLEY_WEBHOOK_LEASE": "2", "PARLEY_LOG_LEVEL": "warning",
    }
    out = open(tmp_path / "deliver.log", "ab")

    def deliver() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "service", "deliver"], env=env, stdout=out, stderr=subprocess.STDOUT)

    try:
        log.record("talks", [NegotiationOpened(occurred_on=utcnow().date(), title="T", parties=("US",))], principal="t", request_id="r")
        hooks.relay.catch_up()
        _, secret = hooks.subscriptions.create(url=receiver.url, event_types=["event.deadline_set"], negotiations=[],
                                               description=None, created_by="test", now=utcnow())
        appended: list[str] = []

        def append() -> None:
            for start in range(0, 1000, 20):
                batch = [DeadlineSet(occurred_on=utcnow().date(), deadline_id=f"d{i}", title="D", due_on=utcnow().date())
                         for i in range(start, start + 20)]
                appended.extend(a.record.event_id for a in log.record("talks", batch, principal="t", request_id="r"))
                time.sleep(0.02)

        writer = threading.Thread(target=append)
        writer.start()
        process = deliver()
        rng = random.Random(7)
        for _ in range(10):
            time.sleep(rng.uniform(0.3, 1.2))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            process = deliver()
        writer.join()
        deadline = time.monotonic() + 120
        while len({h["webhook-id"] for h, _ in receiver.received}) < 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        ids = {h["webhook-id"] for h, _ in receiver.received}
        assert ids == {f"event.{event_id}" for event_id in appended}
        bodies: dict[str, bytes] = {}
        for headers, body in receiver.received:
            assert bodies.setdefault(headers["webhook-id"], body) == body  # a duplicate is the same message
            Webhook(secret).verify(body, headers)
        print(f"{len(receiver.received)} deliveries for {len(ids)} messages")
    finally:
        hooks.tables.datastore.close()
        log.close()
        receiver.stop()
        out.close()


@pytest.mark.serial
def test_messages_claimed_by_a_sigkilled_server_arrive_within_seconds_of_its_restart(database_url, tmp_path):
    """The restarted server takes over what the dead one had claimed at once, not when the claims (60 s) run out."""
    receiver = Receiver()
    slow = threading.Event()
    slow.set()
    receiver.on_request = lambda: slow.is_set() and time.sleep(0.5)  # so the killed server has claimed rows in flight
    receiver.start()
    admin = create_key(database_url, "admin", "admin")
    env = {"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "PARLEY_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
           "PARLEY_LOG_LEVEL": "warning"}
    headers = {"Authorization": f"Bearer {admin}"}
    process, base_url = start_server(database_url, tmp_path / "server.log", env=env)
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            assert client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).status_code == 201
            hook = client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["event.deadline_set"]})
            assert hook.status_code == 201, hook.text
            webhook_id = hook.json()["webhook"]["id"]
            appended = client.post("/v1/negotiations/talks/events", json={"events": [deadline(f"d{i}") for i in range(27)]})
            assert appended.status_code == 201, appended.text
            expected = {f"event.{event['event_id']}" for event in appended.json()["events"]}
            until = time.monotonic() + 30
            while len(receiver.received) < 2 and time.monotonic() < until:
                time.sleep(0.05)
            claimed = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"status": "delivering"}).json()["items"]
        assert len(receiver.received) >= 2 and len(claimed) >= 5, (len(receiver.received), len(claimed))
        kill_server(process)
        slow.clear()
        before = {h["webhook-id"] for h, _ in receiver.received}
        restarted = time.monotonic()
        process, _ = start_server(database_url, tmp_path / "server.log", env=env)
        ready = time.monotonic() - restarted
        arrived: dict[str, float] = {}
        while time.monotonic() < restarted + 10 and not expected <= before | set(arrived):
            for h, _ in list(receiver.received):
                arrived.setdefault(h["webhook-id"], time.monotonic() - restarted)
            time.sleep(0.05)
        missing = expected - before - set(arrived)
        worst = max((arrived[m] for m in expected - before - missing), default=float("nan"))
        print(f"{'postgres' if database_url.startswith('postgresql') else 'sqlite'}: {len(before)} of 27 messages arrived before "
              f"the SIGKILL, {len(claimed)} claimed; ready {ready:.2f} s after the restart began; worst delay after it {worst:.2f} s"
              f"{f', {len(missing)} still missing at 10 s' if missing else ''}")
        assert not missing, f"{len(missing)} messages not delivered within 10 s of the restart"
    finally:
        kill_server(process)
        receiver.stop()
