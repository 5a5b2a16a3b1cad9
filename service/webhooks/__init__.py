"""Webhooks: subscriptions, the relay that fills the outbox, senders that deliver it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from events.application import ParleyLog


@dataclasses.dataclass
class Webhooks:
    """Everything webhook delivery needs in one process, built by `open_webhooks`."""

    tables: Any
    subscriptions: Any
    relay: Any
    sender: Any
    clock: Callable[[], dt.datetime]
    allow_hosts: frozenset[str]
    resolver: Any

    def start(self, *, lease_poll: float = 1.0) -> None:
        self.relay.start(lease_poll=lease_poll)
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()
        self.relay.stop()
        self.tables.datastore.close()


def checkpoint_of(log: ParleyLog, signer: Any) -> Callable[[int], dict[str, Any] | None]:
    """Signs the log's state at a position, as `GET /v1/audit/checkpoint` does for the head."""
    import msgspec

    def checkpoint(position: int) -> dict[str, Any] | None:
        found = log.feed(after=position - 1, limit=1)[0]
        if not found or found[0].position != position:
            return None
        appended = found[0]
        recorded_at = appended.record.recorded_at.isoformat().replace("+00:00", "Z")
        return msgspec.to_builtins(signer.checkpoint(appended.position, appended.hash, recorded_at))

    return checkpoint


def open_webhooks(
    log: ParleyLog,
    *,
    secret_key: bytes,
    clock: Callable[[], dt.datetime],
    allow_hosts: frozenset[str],
    warn_days: tuple[int, ...] = (7, 1),
    timeout: float = 15.0,
    lease_seconds: float = 60.0,
    checkpoint: Callable[[int], dict[str, Any] | None] | None = None,
    checkpoint_every: int = 1000,
    checkpoint_hours: float = 24.0,
    resolver: Any = None,
    connect: Any = None,
) -> Webhooks:
    from service.followers.liveness import Liveness
    from service.webhooks.delivery import Relay, Sender
    from service.webhooks.outbound import system_resolver
    from service.webhooks.store import SENDER, open_webhook_tables
    from service.webhooks.subscriptions import SecretBox, Subscriptions

    resolver = resolver or system_resolver
    tables = open_webhook_tables(log)
    subscriptions = Subscriptions(tables, SecretBox(secret_key))
    relay = Relay(
        log, tables, subscriptions, clock=clock, warn_days=warn_days, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, checkpoint_interval=dt.timedelta(hours=checkpoint_hours),
    )
    sender = Sender(
        tables, subscriptions, liveness=Liveness(log.env, SENDER), clock=clock, allow_hosts=allow_hosts, resolver=resolver,
        connect=connect, timeout=timeout, lease=dt.timedelta(seconds=lease_seconds),
    )
    relay.on_enqueue = sender.wake
    return Webhooks(tables, subscriptions, relay, sender, clock, allow_hosts, resolver)
