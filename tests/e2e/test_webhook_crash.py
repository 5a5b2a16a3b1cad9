"""A sender killed with SIGKILL ten times while 1,000 events are appended: every message still arrives."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook

from events.application import utcnow
from events.payloads import DeadlineSet, NegotiationOpened
from service.stores import open_log
from service.settings import Settings
from service.signing import Signer
from service.webhooks import open_webhooks
from tests.api.test_webhooks import Receiver

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
