"""The relay (log -> outbox, with tracking) and the sender (outbox -> receivers, with retries and leases)."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from eventsourcing.persistence import Notification, PersistenceError, Tracking
from standardwebhooks.webhooks import Webhook

from events.application import ParleyLog, utcnow
from service.followers.parking import (
    Parked,
    attempted,
    decode,
    describe,
    is_poison,
    parked_events,
    refold,
)
from service.followers.follower import Follower
from service.followers.liveness import Liveness
from projections.state import evolve
from service.webhooks.messages import (
    Message,
    calendar_messages,
    event_messages,
    matches,
    operational_message,
)
from service.webhooks.outbound import (
    Attempt,
    DestinationRefusedError,
    check_destination,
    check_listener,
    post,
)
from service.webhooks.store import RELAY, Enqueued, WebhookTables, iso
from service.webhooks.subscriptions import SecretUnreadableError, Subscriptions, WebhookNotFoundError

Clock = Callable[[], dt.datetime]
# After the first attempt fails, the retries come this long after each failure (each +-20%).
SCHEDULE = [dt.timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)]
DISABLE_AFTER = dt.timedelta(days=5)
MAX_RETRY_AFTER = dt.timedelta(hours=24)




def _enqueue_for(subscriptions: Sequence[dict[str, Any]], messages: Sequence[Message]) -> list[tuple[Enqueued, str]]:
    rows = []
    for message in messages:
        for sub in subscriptions:
            if matches(sub, message):
                status = "pending" if sub["status"] == "active" else "skipped"
                rows.append((Enqueued(message.id, sub["id"], message.type, message.body, message.position), status))
    return rows


class Relay(Follower):
    """Turns each event into messages and enqueues them for matching subscriptions, tracked with the outbox."""

    name = RELAY
    # a subscriber waits for what the relay enqueues: never hold an event back to batch it
    LINGER_SECONDS = 0.0

    def __init__(
        self,
        log: ParleyLog,
        tables: WebhookTables,
        subscriptions: Subscriptions,
        *,
        clock: Clock = utcnow,
        warn_days: Sequence[int] = (7, 1),
        batch_size: int = 500,
        refresh_seconds: float = 30.0,
        checkpoint: Callable[[int], dict[str, Any] | None] | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: dt.timedelta = dt.timedelta(hours=24),
    ) -> None:
        super().__init__(log, batch_size=batch_size, refresh_seconds=refresh_seconds)
        self.tables = tables
        self.subscriptions = subscriptions
        self.clock = clock
        self.warn_days = warn_days
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self._last_checkpoint: dt.datetime | None = None
        self.on_enqueue: Callable[[], None] = lambda: None  # a sender in the same process wakes at once

    def position(self) -> int:
        return self.tables.position()

    def reset(self) -> None:
        raise NotImplementedError("the relay is never rebuilt; replay a subscription instead")

    def apply(self, notifications: Sequence[Notification]) -> None:
        positions = [n.id for n in notifications]
        messages: list[Message] = []
        for position, record, before, after in self.fold_in(notifications):
            try:
                messages += event_messages(record, position, before, after)
            except Exception as error:  # noqa: BLE001 - deriving this event's messages failed: the event is poison
                if not is_poison(error):
                    raise
                self.parking.park(position, error, record.negotiation_id, record.event_id)
        before_batch = self.position()
        if self.checkpoint and positions[-1] // self.checkpoint_every > before_batch // self.checkpoint_every:
            messages += self._checkpoint_message(positions[-1])
        rows = _enqueue_for(self.subscriptions.all(), messages)
        parked = self.parking.take()
        self.tables.enqueue(rows, self.clock(), Tracking(RELAY, positions[-1]), parked)
        for event in parked:
            self._log.error("event_parked", position=event.position, event_id=event.event_id,
                            negotiation_id=event.negotiation_id, error=event.error)
        if rows:
            self.on_enqueue()

    def retry_parked(self, positions: Sequence[int] = ()) -> list[Parked]:
        """Derive the messages of parked events again (all, or those at `positions`) and enqueue them; the still failing."""
        all_parked = {p.position for p in parked_events(self.tables, RELAY)}
        failing: list[Parked] = []
        for event in parked_events(self.tables, RELAY, positions):
            try:
                notification, = self.log.recorder.select_notifications(start=event.position, limit=1)
                record = self.log.mapper.to_domain_event(notification)
                before = refold(self.log, record.negotiation_id, skip=all_parked - {event.position},
                                upto_version=record.originator_version - 1)
                messages = event_messages(record, event.position, before if before.size else None, evolve(before, record))
            except Exception as error:  # noqa: BLE001 - the event's failure, kept with the park row
                if not is_poison(error):
                    raise
                failing.append(attempted(event, error))
                continue
            self.tables.enqueue(_enqueue_for(self.subscriptions.all(), messages), self.clock(), None, resolved=[event.position])
            self._states.pop(record.negotiation_id, None)
            self.parking.forget([event.position])
        if failing:
            self.tables.enqueue([], self.clock(), None, failing)
        return failing

    def _checkpoint_message(self, position: int) -> list[Message]:
        """A signed checkpoint for subscribers of audit.checkpoint, so outsiders hold witnesses of the log."""
        signed = self.checkpoint(position) if self.checkpoint else None
        if signed is None:
            return []
        self._last_checkpoint = self.clock()
        return [operational_message("audit.checkpoint", f"audit.checkpoint.{position}", self.clock(), signed)]

    def tick(self) -> None:
        """Deadlines approaching or passed and truces lapsed, from the clock; each message once per cause."""
        now = self.clock()
        subscriptions = self.subscriptions.all()
        if not subscriptions:
            return
        position = self.position()
        if self.checkpoint and position and (self._last_checkpoint is None or now - self._last_checkpoint >= self.checkpoint_interval):
            self.tables.enqueue(_enqueue_for(subscriptions, self._checkpoint_message(position)), now, None)
        after = 0
        # Negotiations from their opening events and states from the relay's own folds, which leave parked events out.
        while opened := self.log.store.select_feed(after=after, limit=100, topics=("negotiation_opened",)):
            for row in opened:
                negotiation_id = decode(self.log, row).negotiation_id
                try:
                    state = self._states.get(negotiation_id) or self.current_state(negotiation_id)
                    messages = calendar_messages(state, position, now.date(), self.warn_days, now)
                except Exception as error:  # noqa: BLE001 - an event the relay has yet to reach and park; the next tick
                    if not is_poison(error):
                        raise
                    self._log.warning("calendar_skipped", negotiation_id=negotiation_id, error=describe(error))
                    continue
                self.tables.enqueue(_enqueue_for(subscriptions, messages), now, None)
            after = opened[-1].position

    def replay(self, subscription_id: str, after_position: int) -> int:
        """Re-create this subscription's messages after a position (same ids, same bytes) and queue them again."""
        sub = next(s for s in self.subscriptions.all() if s["id"] == subscription_id)
        states: dict[str, Any] = {}
        queued = 0
        position = after_position
        parked = {p.position for p in parked_events(self.tables, RELAY)}  # their messages come with `parley projections retry`
        while batch := self.log.recorder.select_notifications(start=position, limit=500, inclusive_of_start=False):
            position = batch[-1].id
            for notification in batch:
                if notification.id in parked:
                    continue
                record = self.log.mapper.to_domain_event(notification)
                before = states.get(record.negotiation_id)
                if before is None:
                    before = refold(self.log, record.negotiation_id, skip=parked, upto_version=record.originator_version - 1)
                after = evolve(before, record)
                states[record.negotiation_id] = after
                for message in event_messages(record, notification.id, before if before.size else None, after):
                    if matches(sub, message):
                        self.tables.requeue(
                            Enqueued(message.id, sub["id"], message.type, message.body, message.position), self.clock()
                        )
                        queued += 1
        return queued


class Sender:
    """Claims due outbox rows under a lease and delivers them, signed per Standard Webhooks.

    Its rows carry its id, whose lease (`liveness`) it holds while it lives: a sender that finds that lease
    free takes the rows over at once; the claim's expiry covers a sender that lives but is stuck.
    """

    def __init__(
        self,
        tables: WebhookTables,
        subscriptions: Subscriptions,
        *,
        liveness: Liveness,
        clock: Clock = utcnow,
        allow_hosts: frozenset[str] = frozenset(),
        resolver: Any = None,
        connect: Any = None,
        timeout: float = 15.0,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        batch: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        self.tables = tables
        self.subscriptions = subscriptions
        self.liveness = liveness
        self.clock = clock
        self.allow_hosts = allow_hosts
        self.resolver = resolver
        self.connect = connect
        self.timeout = timeout
        self.lease = lease
        self.batch = batch
        self.rng = rng or random.Random()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting = False
        self._log = structlog.get_logger("parley.webhooks")

    def wake(self) -> None:
        self._wake.set()

    def deliver_due(self) -> int:
        me = self.liveness.hold()
        if me is None:  # without a sign of life others could not tell our claims from a dead sender's
            if not self._waiting:
                self._log.warning("sender_waiting_for_liveness")
            self._waiting = True
            return 0
        self._waiting = False
        gone = self.liveness.gone(self.tables.claimers(excluding=me))
        if gone:
            self._log.info("sender_taking_over", gone=sorted(gone))
        now = self.clock()
        rows = self.tables.claim(now, self.lease, self.batch, me, gone)
        if rows and not self.liveness.held():  # lost meanwhile (its session ended): others may take these as a dead sender's
            self.tables.give_back(me)
            self.liveness.release()  # a fresh id next time
            self._log.warning("sender_liveness_lost", sender=me)
            return len(rows)
        held_until, held = now + self.lease, None  # None: every row claimed
        for row in rows:
            if self._stopping.is_set():  # the rest of the batch is due now: the next sender takes it at once
                self.tables.give_back(me)
                break
            now = self.clock()
            if now >= held_until - self.lease / 2:  # a slow batch: keep the rest of it, or learn which rows another sender took
                held = self.tables.renew(me, held_until, now + self.lease)
                held_until = now + self.lease
            if held is not None and (row["message_id"], row["subscription_id"]) not in held:
                continue  # its lease ran out before its turn came, and another sender has it now
            self._deliver(row)
        return len(rows)

    def _deliver(self, row: dict[str, Any]) -> None:
        try:
            sub = self.subscriptions.row(row["subscription_id"])
        except WebhookNotFoundError:  # deleted meanwhile, with its queue
            return
        key = (row["message_id"], row["subscription_id"])
        if sub["status"] != "active":
            self._finish(key, "skipped", row["attempts"], None)
            return
        now = self.clock()
        body: bytes = row["body"].encode() if isinstance(row["body"], str) else row["body"]
        try:
            secrets = self.subscriptions.signing_secrets(sub, now)
        except SecretUnreadableError as unreadable:
            # never send unsigned or wrongly signed: stop, and say how to recover (nothing is dropped: pending turns skipped)
            self._finish(key, "skipped", row["attempts"], None)
            self._disable(sub, now, f"{unreadable}; rotate its secret, re-enable it and recover the skipped messages")
            return
        signatures = " ".join(Webhook(secret).sign(row["message_id"], now, body.decode()) for secret in secrets)
        headers = {
            "content-type": "application/json",
            "webhook-id": row["message_id"],
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
            "user-agent": "Parley-Webhooks/1",
        }
        try:
            allow_hosts = self.allow_hosts
            if sub.get("listener"):  # the one loopback destination: its literal address, checked again here
                destination = check_listener(sub["url"])
                allow_hosts = allow_hosts | {destination.host}
            else:
                destination = check_destination(sub["url"], allow_hosts=allow_hosts, resolver=self.resolver)
            attempt = post(destination, body, headers, timeout=self.timeout, connect=self.connect, resolver=self.resolver,
                           allow_hosts=allow_hosts, clock=self.clock)
        except DestinationRefusedError as refused:
            attempt = Attempt(status=None, latency_ms=0.0, response_head=b"", retry_after=None, error=refused.reason)
        number = row["attempts"] + 1
        self.tables.run(
            "INSERT INTO parley_delivery_attempts (message_id, subscription_id, attempt, attempted_at, status_code, latency_ms, "
            "response_head, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*key, number, iso(now), attempt.status, attempt.latency_ms, attempt.response_head.decode("utf-8", "replace"), attempt.error),
            commit=True,
        )
        status = attempt.status
        if status is not None and 200 <= status < 300:
            self._finish(key, "delivered", number, status)
            self.tables.run("UPDATE parley_webhooks SET last_success_at = ?, failing_since = NULL WHERE id = ?",
                            (iso(now), sub["id"]), commit=True)
            return
        if status == 410:
            self._finish(key, "failed", number, status)
            self._disable(sub, now, "the receiver answered 410 Gone")
            return
        failing_since = sub.get("failing_since")
        if failing_since is None:
            self.tables.run("UPDATE parley_webhooks SET failing_since = ? WHERE id = ? AND failing_since IS NULL",
                            (iso(now), sub["id"]), commit=True)
        elif now - dt.datetime.fromisoformat(failing_since.replace("Z", "+00:00")) >= DISABLE_AFTER:
            self._finish(key, "failed", number, status)
            self._disable(sub, now, "no successful delivery for 5 days")
            return
        if number > len(SCHEDULE):
            self._finish(key, "failed", number, status)
            return
        delay = SCHEDULE[number - 1] * self.rng.uniform(0.8, 1.2)
        if attempt.retry_after is not None and status in (429, 503):
            delay = max(delay, min(dt.timedelta(seconds=attempt.retry_after), MAX_RETRY_AFTER))
        self.tables.run(
            "UPDATE parley_outbox SET status = 'pending', attempts = ?, next_attempt_at = ?, lease_until = NULL, claimed_by = NULL, "
            "last_status = ? WHERE message_id = ? AND subscription_id = ?",
            (number, iso(now + delay), status, *key),
            commit=True,
        )

    def _finish(self, key: tuple[str, str], status: str, attempts: int, code: int | None) -> None:
        self.tables.run(
            "UPDATE parley_outbox SET status = ?, attempts = ?, lease_until = NULL, claimed_by = NULL, last_status = ? "
            "WHERE message_id = ? AND subscription_id = ?",
            (status, attempts, code, *key),
            commit=True,
        )

    def _disable(self, sub: dict[str, Any], now: dt.datetime, reason: str) -> None:
        self.subscriptions.update(sub["id"], status="disabled", disabled_reason=reason)
        self.tables.run("UPDATE parley_outbox SET status = 'skipped' WHERE subscription_id = ? AND status = 'pending'",
                        (sub["id"],), commit=True)
        message = operational_message(
            "webhook.disabled", f"webhook.disabled.{sub['id']}.{iso(now)}", now,
            {"webhook_id": sub["id"], "url": sub["url"], "reason": reason, "links": {"webhook": f"/v1/webhooks/{sub['id']}"}},
        )
        admins = [s for s in self.subscriptions.all() if s["id"] != sub["id"]]
        rows = _enqueue_for(admins, [message])
        self.tables.enqueue(rows, now, None)
        self._log.warning("webhook_disabled", webhook_id=sub["id"], reason=reason)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.deliver_due()
            except PersistenceError as error:
                self._log.warning("sender_store_unavailable", error=str(error))
                busy = 0
            if not busy:
                self._wake.wait(0.2)
                self._wake.clear()
        self.liveness.release()

    def stop(self, timeout: float = 20.0) -> None:
        """Finish the delivery in hand, give the rest of the batch back, and let go of the sign of life."""
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            self.liveness.release()
        else:
            self._thread.join(timeout)  # a delivery still running keeps the sign of life until the process ends
