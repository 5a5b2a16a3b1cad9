"""Webhooks end to end in one process: a real receiver on 127.0.0.1 verifies every delivery with standardwebhooks.

The relay and the sender are driven by hand (catch_up, deliver_due) with a settable clock, so
retry times are checked exactly, without sleeping.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import TestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.app import create_app
from service.followers.liveness import Liveness
from service.settings import Settings
from service.webhooks.delivery import Sender
from service.webhooks.store import SENDER
from tests.api.conftest import deadline, measure


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 that records what it got and answers what it is told."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: Any = None
    on_request: Any = None  # called with each request before it is answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers["content-length"])
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.on_request is not None:
                    receiver.on_request()
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@dataclass
class Hooks:
    client: TestClient[Any]
    admin: dict[str, str]
    clock: Any

    @property
    def webhooks(self) -> Any:
        return self.client.app.state.webhooks

    def subscribe(self, url: str, **extra: Any) -> tuple[str, str]:
        response = self.client.post("/v1/webhooks", json={"url": url, **extra}, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()["webhook"]["id"], response.json()["secret"]

    def append(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.post("/v1/negotiations/talks/events", json={"events": list(events)}, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()["events"]

    def pump(self) -> int:
        """Relay what the log holds, then deliver everything due now."""
        self.webhooks.relay.catch_up()
        delivered = 0
        while sent := self.webhooks.sender.deliver_due():
            delivered += sent
        return delivered

    def outbox(self, webhook_id: str) -> list[dict[str, Any]]:
        return self.webhooks.tables.run("SELECT * FROM parley_outbox WHERE subscription_id = ? ORDER BY position, message_id", (webhook_id,))


@pytest.fixture
def hooks(database_url: str, clock: Any, tmp_path: Any) -> Iterator[Hooks]:
    settings = Settings(
        database_url=database_url, signing_key_file=str(tmp_path / "k"), run_webhooks=False, run_projections=False,
        webhook_allow_hosts="127.0.0.1", webhook_timeout=5,
    )
    clock.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with TestClient(create_app(settings, clock=clock)) as client:
        admin = client.app.state.key_store.create(name="admin", role="admin", created_by="test").key
        headers = {"Authorization": f"Bearer {admin}"}
        client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}, headers=headers)
        client.app.state.webhooks.relay.catch_up()  # subscriptions below start after the opening
        yield Hooks(client, headers, clock)


def verify(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return Webhook(secret).verify(body, headers)


def test_every_event_is_delivered_signed_and_verifies(hooks, receiver):
    webhook_id, secret = hooks.subscribe(receiver.url)
    assert secret.startswith("whsec_")
    sent = hooks.append(deadline("a"), measure())
    assert hooks.pump() >= 2
    messages = {h["webhook-id"]: verify(secret, h, b) for h, b in receiver.received}
    for event in sent:
        message = messages[f"event.{event['event_id']}"]
        assert message["type"] == f"event.{event['type']}"
        assert message["data"]["position"] == event["position"] and message["data"]["version"] == event["version"]
        assert message["data"]["links"]["event"] == f"/v1/events/{event['event_id']}"
    assert all(len(b) < 20_000 for _, b in receiver.received)
    assert {r["status"] for r in hooks.outbox(webhook_id)} == {"delivered"}


def test_filters_by_type_and_negotiation(hooks, receiver):
    hooks.subscribe(receiver.url, event_types=["event.measure_changed"], negotiations=["talks"])
    hooks.subscribe(receiver.url, negotiations=["elsewhere"])
    hooks.append(deadline("a"), measure())
    hooks.pump()
    assert [json.loads(b)["type"] for _, b in receiver.received] == ["event.measure_changed"]


def test_rotation_signs_with_both_secrets_until_the_grace_ends(hooks, receiver):
    webhook_id, old = hooks.subscribe(receiver.url, event_types=["event.*"])
    rotated = hooks.client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", json={"grace_seconds": 3600}, headers=hooks.admin)
    new = rotated.json()["secret"]
    hooks.append(deadline("a"))
    hooks.pump()
    headers, body = receiver.received[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(old, headers, body) and verify(new, headers, body)
    hooks.clock.advance(hours=2)
    hooks.append(deadline("b"))
    hooks.pump()
    headers, body = receiver.received[-1]
    # the receiver's verification tolerates 5 minutes of skew; re-sign the check at the test clock's time
    assert len(headers["webhook-signature"].split(" ")) == 1
    expected = Webhook(new).sign(headers["webhook-id"], hooks.clock.now, body.decode())
    assert headers["webhook-signature"] == expected
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, {**headers, "webhook-timestamp": str(int(dt.datetime.now(dt.UTC).timestamp()))})


def test_an_outage_is_retried_on_the_schedule_until_delivered(hooks, receiver):
    webhook_id, secret = hooks.subscribe(receiver.url, event_types=["event.*"])
    receiver.answers = [(503, {}), (503, {}), (500, {})]
    hooks.append(deadline("a"))
    hooks.pump()
    expected = [dt.timedelta(seconds=5), dt.timedelta(minutes=5), dt.timedelta(minutes=30)]
    for delay in expected:
        row = hooks.outbox(webhook_id)[0]
        assert row["status"] == "pending"
        due = dt.datetime.fromisoformat(row["next_attempt_at"].replace("Z", "+00:00"))
        assert delay * 0.8 <= due - hooks.clock.now <= delay * 1.2
        assert hooks.webhooks.sender.deliver_due() == 0  # not due yet
        hooks.clock.now = due
        hooks.pump()
    assert hooks.outbox(webhook_id)[0]["status"] == "delivered"
    assert len(receiver.received) == 4 and len({h["webhook-id"] for h, _ in receiver.received}) == 1
    assert len({b for _, b in receiver.received}) == 1  # every retry sends the same bytes
    deliveries = hooks.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=hooks.admin).json()["items"]
    assert [a["status_code"] for a in deliveries[0]["attempt_log"]] == [503, 503, 500, 200]


def test_a_redirect_is_not_followed_and_410_disables_at_once(hooks, receiver):
    webhook_id, _ = hooks.subscribe(receiver.url, event_types=["event.*"])
    receiver.answers = [(301, {"Location": "http://127.0.0.1:9/elsewhere"})]
    hooks.append(deadline("a"))
    hooks.pump()
    assert len(receiver.received) == 1 and hooks.outbox(webhook_id)[0]["last_status"] == 301
    assert hooks.outbox(webhook_id)[0]["status"] == "pending"
    receiver.answers = [(410, {})]
    hooks.clock.advance(seconds=10)
    hooks.pump()
    sub = hooks.client.get(f"/v1/webhooks/{webhook_id}", headers=hooks.admin).json()
    assert sub["status"] == "disabled" and "410" in sub["disabled_reason"]
    hooks.append(deadline("b"))
    hooks.pump()
    assert len(receiver.received) == 2
    assert {r["status"] for r in hooks.outbox(webhook_id)} == {"failed", "skipped"}  # recorded, never dropped


def test_429_retry_after_is_honoured(hooks, receiver):
    webhook_id, _ = hooks.subscribe(receiver.url, event_types=["event.*"])
    receiver.answers = [(429, {"Retry-After": "120"})]
    hooks.append(deadline("a"))
    hooks.pump()
    due = dt.datetime.fromisoformat(hooks.outbox(webhook_id)[0]["next_attempt_at"].replace("Z", "+00:00"))
    assert due - hooks.clock.now >= dt.timedelta(seconds=120)


def test_a_truce_extension_derives_exactly_one_truce_extended(hooks, receiver):
    hooks.subscribe(receiver.url, event_types=["truce.*"])
    hooks.append(
        deadline("truce-expiry", "2031-08-12"),
        {"type": "truce_agreed", "occurred_on": "2025-05-12", "truce_id": "geneva", "effective_from": "2025-05-14", "deadline_id": "truce-expiry"},
    )
    hooks.pump()
    hooks.clock.advance(minutes=1)
    extension = hooks.append({"type": "deadline_extended", "occurred_on": "2025-08-11", "deadline_id": "truce-expiry", "due_on": "2031-11-10"})
    hooks.pump()
    hooks.webhooks.relay.tick()
    hooks.pump()
    types = [json.loads(b)["type"] for _, b in receiver.received]
    assert types == ["truce.extended"]
    assert receiver.received[0][0]["webhook-id"] == f"truce.extended.{extension[0]['event_id']}"


def test_a_deadline_seven_days_out_warns_once_even_after_a_restart(hooks, receiver):
    hooks.subscribe(receiver.url, event_types=["deadline.*"])
    due = (hooks.clock.now + dt.timedelta(days=6)).date().isoformat()
    hooks.append(deadline("summit", due))
    hooks.pump()
    for _ in range(3):
        hooks.webhooks.relay.tick()
        hooks.pump()
    hooks.webhooks.relay._states.clear()  # a restarted relay knows nothing in memory
    hooks.webhooks.relay.tick()
    hooks.pump()
    approaching = [json.loads(b) for _, b in receiver.received if json.loads(b)["type"] == "deadline.approaching"]
    assert len(approaching) == 1 and approaching[0]["data"]["threshold_days"] == 7
    hooks.clock.advance(days=5, hours=12)
    hooks.webhooks.relay.tick()
    hooks.pump()
    thresholds = [json.loads(b)["data"]["threshold_days"] for _, b in receiver.received if json.loads(b)["type"] == "deadline.approaching"]
    assert thresholds == [7, 1]


def test_replay_resends_the_same_ids_and_bytes(hooks, receiver):
    webhook_id, _ = hooks.subscribe(receiver.url, event_types=["event.*"])
    hooks.append(deadline("a"), deadline("b"))
    hooks.pump()
    first = sorted((h["webhook-id"], b) for h, b in receiver.received)
    replayed = hooks.client.post(f"/v1/webhooks/{webhook_id}/replay", json={"after_position": 0}, headers=hooks.admin)
    assert replayed.status_code == 202
    hooks.pump()
    again = sorted((h["webhook-id"], b) for h, b in receiver.received[len(first):])
    assert [i for i, _ in again if i in dict(first)] == [i for i, _ in first]
    assert all(dict(again)[i] == b for i, b in first)


def test_private_and_plain_http_destinations_are_refused_at_registration(hooks):
    for url in ("http://example.com/hook", "https://10.0.0.5/hook", "https://169.254.169.254/latest", "http://localhost:1/x"):
        response = hooks.client.post("/v1/webhooks", json={"url": url}, headers=hooks.admin)
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "url"


def test_webhooks_need_an_admin(hooks):
    reader = hooks.client.app.state.key_store.create(name="r", role="reader", created_by="t").key
    assert hooks.client.get("/v1/webhooks", headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    assert hooks.client.get("/v1/webhooks").status_code == 401


def test_subscribers_of_audit_checkpoint_receive_signed_checkpoints_every_n_events(hooks, receiver):
    import msgspec

    from events.audit import Checkpoint
    from service.signing import signature_valid

    hooks.webhooks.relay.checkpoint_every = 5
    hooks.subscribe(receiver.url, event_types=["audit.checkpoint"])
    for i in range(12):
        hooks.append(deadline(f"d{i}"))
        hooks.pump()
    checkpoints = [json.loads(b)["data"] for _, b in receiver.received]
    assert len(checkpoints) >= 2 and all(c["position"] % 5 == 0 for c in checkpoints)
    public_key = hooks.client.get("/v1/audit/public-key").json()["public_key"]
    for data in checkpoints:
        assert signature_valid(msgspec.convert(data, Checkpoint), public_key)
    hooks.webhooks.relay.tick()  # within the interval: nothing
    hooks.clock.advance(hours=25)
    hooks.webhooks.relay.tick()  # the clock's checkpoint of the head
    hooks.clock.advance(hours=25)
    hooks.webhooks.relay.tick()  # an unchanged head gives the same message id: nothing new is sent
    hooks.pump()
    assert len(receiver.received) == len(checkpoints) + 1


def test_five_days_without_success_disables_and_tells_the_other_subscriptions(hooks, receiver):
    failing = Receiver()
    failing.start()
    try:
        webhook_id, _ = hooks.subscribe(failing.url, event_types=["event.*"])
        hooks.subscribe(receiver.url, event_types=["webhook.disabled"])
        failing.answers = [(500, {})] * 50
        hooks.append(deadline("a"))
        hooks.pump()
        for _ in range(12):  # walk the clock along the retry schedule
            rows = [r for r in hooks.outbox(webhook_id) if r["status"] == "pending"]
            if not rows:
                break
            hooks.clock.now = max(hooks.clock.now, dt.datetime.fromisoformat(rows[0]["next_attempt_at"].replace("Z", "+00:00")))
            hooks.pump()
        # the whole schedule spans about three days: the message has failed, the subscription still stands
        assert [r["status"] for r in hooks.outbox(webhook_id)] == ["failed"]
        assert hooks.client.get(f"/v1/webhooks/{webhook_id}", headers=hooks.admin).json()["status"] == "active"
        hooks.clock.advance(days=3)
        hooks.append(deadline("b"))  # over five days after the first failure, still no success
        hooks.pump()
        sub = hooks.client.get(f"/v1/webhooks/{webhook_id}", headers=hooks.admin).json()
        assert sub["status"] == "disabled" and "5 days" in sub["disabled_reason"]
        told = [json.loads(b) for _, b in receiver.received]
        assert [m["type"] for m in told] == ["webhook.disabled"] and told[0]["data"]["webhook_id"] == webhook_id
    finally:
        failing.stop()


def test_retry_and_recover_send_failed_messages_again_with_their_ids(hooks, receiver):
    webhook_id, secret = hooks.subscribe(receiver.url, event_types=["event.*"])
    receiver.answers = [(410, {})]  # gone: the subscription is disabled, the message failed
    sent = hooks.append(deadline("a"))
    hooks.pump()
    hooks.append(deadline("b"))
    hooks.pump()
    assert {r["status"] for r in hooks.outbox(webhook_id)} == {"failed", "skipped"}
    hooks.client.patch(f"/v1/webhooks/{webhook_id}", json={"status": "active"}, headers=hooks.admin)
    message_id = f"event.{sent[0]['event_id']}"
    retried = hooks.client.post(f"/v1/webhooks/{webhook_id}/deliveries/{message_id}/retry", headers=hooks.admin)
    assert retried.status_code == 202
    hooks.pump()
    assert receiver.received[-1][0]["webhook-id"] == message_id
    recovered = hooks.client.post(f"/v1/webhooks/{webhook_id}/recover",
                                  json={"since": (hooks.clock.now - dt.timedelta(hours=1)).isoformat()}, headers=hooks.admin)
    assert recovered.json()["queued"] == 1  # the skipped one
    hooks.pump()
    assert {r["status"] for r in hooks.outbox(webhook_id)} == {"delivered"}
    for headers, body in receiver.received[1:]:
        assert Webhook(secret).sign(headers["webhook-id"], hooks.clock.now, body.decode()) in headers["webhook-signature"]
    missing = hooks.client.post(f"/v1/webhooks/{webhook_id}/deliveries/nope/retry", headers=hooks.admin)
    assert missing.status_code == 404


def test_a_secret_sealed_under_another_signing_key_disables_its_webhook_until_rotated(hooks, receiver, database_url, tmp_path):
    webhook_id, _ = hooks.subscribe(receiver.url, event_types=["event.*"])
    hooks.append(deadline("a"))
    hooks.webhooks.relay.catch_up()
    # the same database served with another signing key (a lost or replaced key file)
    settings = Settings(
        database_url=database_url, signing_key_file=str(tmp_path / "another"), run_webhooks=False, run_projections=False,
        webhook_allow_hosts="127.0.0.1", webhook_timeout=5,
    )
    with TestClient(create_app(settings, clock=hooks.clock)) as other:
        sender = other.app.state.webhooks.sender
        assert sender.deliver_due() == 1
        assert receiver.received == []  # never sent unsigned or signed with a guess
        sub = other.get(f"/v1/webhooks/{webhook_id}", headers=hooks.admin).json()
        assert sub["status"] == "disabled" and "another server signing key" in sub["disabled_reason"]
        assert [r["status"] for r in hooks.outbox(webhook_id)] == ["skipped"]

        rotated = other.post(f"/v1/webhooks/{webhook_id}/rotate-secret", json={"grace_seconds": 3600}, headers=hooks.admin)
        assert rotated.status_code == 200, rotated.text
        other.patch(f"/v1/webhooks/{webhook_id}", json={"status": "active"}, headers=hooks.admin)
        since = (hooks.clock.now - dt.timedelta(hours=1)).isoformat()
        assert other.post(f"/v1/webhooks/{webhook_id}/recover", json={"since": since}, headers=hooks.admin).json()["queued"] == 1
        while sender.deliver_due():
            pass
    (headers, body), = receiver.received
    assert verify(rotated.json()["secret"], headers, body)["type"] == "event.deadline_set"
    assert headers["webhook-signature"].count("v1,") == 1  # the unreadable previous secret signs nothing


def test_a_slow_batch_keeps_its_lease_so_another_sender_delivers_none_of_it_again(hooks, receiver):
    webhook_id, _ = hooks.subscribe(receiver.url, event_types=["event.*"])
    hooks.append(deadline("a"), deadline("b"), deadline("c"))
    hooks.webhooks.relay.catch_up()
    mine = hooks.webhooks.sender
    other = Sender(mine.tables, mine.subscriptions, liveness=Liveness(hooks.client.app.state.log.env, SENDER), clock=mine.clock,
                   allow_hosts=mine.allow_hosts, resolver=mine.resolver, connect=mine.connect, timeout=mine.timeout, lease=mine.lease)
    slow = threading.Lock()

    def each_delivery_takes_most_of_a_lease_and_the_other_sender_polls_meanwhile() -> None:
        if not slow.acquire(blocking=False):
            return  # a delivery by the other sender, made while this one waits
        try:
            hooks.clock.advance(seconds=0.6 * mine.lease.total_seconds())
            other.deliver_due()
        finally:
            slow.release()

    receiver.on_request = each_delivery_takes_most_of_a_lease_and_the_other_sender_polls_meanwhile
    try:
        assert mine.deliver_due() == 3
    finally:
        other.stop()
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert len(ids) == 3 and len(set(ids)) == 3, ids  # each message once: nothing of the batch was taken over
    assert {r["status"] for r in hooks.outbox(webhook_id)} == {"delivered"}


# --- local listeners (`parley webhooks listen`): the one webhook that may call loopback -------------------------------


def test_a_loopback_url_is_refused_unless_the_webhook_is_a_listener(api):
    for url in ("http://127.0.0.1:8787/", "http://[::1]:8787/", "https://127.0.0.1:8787/"):
        response = api.post("/v1/webhooks", {"url": url}, role="admin")
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "url"


def test_a_listener_may_only_point_at_127_0_0_1_or_ipv6_loopback_over_http(api):
    for url in ("https://example.com/hook", "http://localhost:8787/", "http://127.0.0.2:8787/", "http://0x7f.1:8787/",
                "http://[::ffff:127.0.0.1]:8787/", "https://127.0.0.1:8787/", "http://10.0.0.5:8787/", "http://u:p@127.0.0.1:8787/"):
        response = api.post("/v1/webhooks", {"url": url, "listener": True}, role="admin")
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "url", url


def test_a_listener_is_refused_to_a_client_that_is_not_on_parleys_machine(api):
    # the test client's address is "testclient": not loopback, as a client across the network is not
    response = api.post("/v1/webhooks", {"url": "http://127.0.0.1:8787/", "listener": True}, role="admin")
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"field": "listener", "message": "a listener webhook can only be registered or changed "
                                          "from the machine Parley runs on (a loopback client, not through a proxy)"}]
    assert api.get("/v1/webhooks", role="admin").json()["items"] == []


def test_a_listeners_url_stays_on_loopback_and_is_changed_only_from_parleys_machine(hooks):
    sub, _ = hooks.webhooks.subscriptions.create(url="http://127.0.0.1:8787/", event_types=[], negotiations=[], description=None,
                                                 created_by="test", now=hooks.clock(), listener=True)
    assert hooks.client.get(f"/v1/webhooks/{sub.id}", headers=hooks.admin).json()["listener"] is True
    elsewhere = hooks.client.patch(f"/v1/webhooks/{sub.id}", json={"url": "https://example.com/hook"}, headers=hooks.admin)
    assert elsewhere.status_code == 422 and elsewhere.json()["errors"][0]["field"] == "url"
    other_port = hooks.client.patch(f"/v1/webhooks/{sub.id}", json={"url": "http://127.0.0.1:8788/"}, headers=hooks.admin)
    assert other_port.status_code == 422 and other_port.json()["errors"][0]["field"] == "listener"
    assert hooks.client.get(f"/v1/webhooks/{sub.id}", headers=hooks.admin).json()["url"] == "http://127.0.0.1:8787/"


def test_the_sender_calls_loopback_for_a_listener_and_for_no_other_webhook(hooks, receiver):
    hooks.webhooks.sender.allow_hosts = frozenset()  # as served by default: no PARLEY_WEBHOOK_ALLOW_HOSTS
    subscriptions = hooks.webhooks.subscriptions
    listener, listener_secret = subscriptions.create(url=receiver.url, event_types=[], negotiations=[], description=None,
                                                     created_by="test", now=hooks.clock(), listener=True)
    # a plain webhook to loopback, say one made while the allow list named 127.0.0.1: its deliveries are refused now
    plain, _ = subscriptions.create(url=receiver.url, event_types=[], negotiations=[], description=None,
                                    created_by="test", now=hooks.clock())
    hooks.append(deadline("a"))
    hooks.pump()
    assert {r["status"] for r in hooks.outbox(listener.id)} == {"delivered"}
    assert all(verify(listener_secret, headers, body) for headers, body in receiver.received)
    assert {r["status"] for r in hooks.outbox(plain.id)} == {"pending"}
    attempts = hooks.webhooks.tables.run("SELECT error FROM parley_delivery_attempts WHERE subscription_id = ?", (plain.id,))
    assert attempts and all("127.0.0.1" in a["error"] for a in attempts), attempts


def test_a_webhooks_table_from_before_listeners_gains_the_column(hooks):
    from service.webhooks.store import open_webhook_tables

    tables = hooks.webhooks.tables
    tables.run("ALTER TABLE parley_webhooks DROP COLUMN listener", commit=True)
    tables.run("INSERT INTO parley_webhooks (id, url, event_types, negotiations, status, secret, created_at, created_by) "
               "VALUES ('wh_old', 'https://example.com/hook', '[]', '[]', 'active', 'x', '2026-01-01T00:00:00Z', 'test')", commit=True)
    open_webhook_tables(hooks.client.app.state.log).datastore.close()
    found = hooks.client.get("/v1/webhooks/wh_old", headers=hooks.admin)
    assert found.status_code == 200, found.text
    assert found.json()["listener"] is False
