"""What an admin does with webhooks: subscribe, change, rotate a secret, read deliveries, send again.

The request bodies are declared here with their limits; the HTTP controller decodes into them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from events.errors import ParleyError
from service.webhooks import Webhooks
from service.webhooks.messages import operational_message
from service.webhooks.outbound import DestinationRefusedError, check_destination, check_listener
from service.webhooks.store import Enqueued, iso
from service.webhooks.subscriptions import Subscription

EventType = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$|^\*$", max_length=100)]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]


class WebhookCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: Annotated[list[EventType], msgspec.Meta(max_length=50)] = []
    negotiations: Annotated[list[Slug], msgspec.Meta(max_length=100)] = []
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    listener: Annotated[bool, msgspec.Meta(description=(
        "A local listener (`parley webhooks listen`): the URL must be http://127.0.0.1:<port>/... or http://[::1]:<port>/..., "
        "and the request must come from the machine Parley runs on, not through a proxy. No other webhook may call loopback."
    ))] = False


class WebhookPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Url | None = None
    event_types: Annotated[list[EventType], msgspec.Meta(max_length=50)] | None = None
    negotiations: Annotated[list[Slug], msgspec.Meta(max_length=100)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    status: Annotated[str, msgspec.Meta(pattern="^(active|disabled)$")] | None = None


class Rotate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] = 86400


class Window(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    since: dt.datetime
    until: dt.datetime | None = None


class Replay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    after_position: Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class CreatedWebhook(msgspec.Struct, frozen=True, kw_only=True):
    webhook: Subscription
    secret: str


class Queued(msgspec.Struct, frozen=True):
    queued: int


class DeliveryNotFoundError(ParleyError):
    def __init__(self, webhook_id: str, delivery_id: str) -> None:
        super().__init__(f"no delivery {delivery_id!r} for webhook {webhook_id!r}")


class ListenerRefusedError(DestinationRefusedError):
    """A local listener asked for by a client that is not on Parley's machine."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "a listener webhook can only be registered or changed from the machine Parley runs on "
                              "(a loopback client, not through a proxy)", field="listener")


class WebhookAdmin:
    """The admin's operations over one process's webhooks; DestinationRefusedError for a URL Parley will not call.

    Only a local listener may call loopback, and only one that a client on Parley's own machine registers:
    `from_loopback` is the HTTP layer's word on where the request came from.
    """

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks
        self.subscriptions = webhooks.subscriptions
        self.tables = webhooks.tables

    def _now(self) -> dt.datetime:
        return self.webhooks.clock()

    def _checked(self, url: str) -> None:
        check_destination(url, allow_hosts=self.webhooks.allow_hosts, resolver=self.webhooks.resolver)

    def _checked_listener(self, url: str, from_loopback: bool) -> None:
        check_listener(url)
        if not from_loopback:
            raise ListenerRefusedError(url)

    def create(self, body: WebhookCreate, *, created_by: str, from_loopback: bool = False) -> CreatedWebhook:
        if body.listener:
            self._checked_listener(body.url, from_loopback)
        else:
            self._checked(body.url)
        sub, secret = self.subscriptions.create(
            url=body.url, event_types=body.event_types, negotiations=body.negotiations,
            description=body.description, created_by=created_by, now=self._now(), listener=body.listener,
        )
        return CreatedWebhook(webhook=sub, secret=secret)

    def list(self, *, after: str, limit: int) -> list[Subscription]:
        return self.subscriptions.list(after=after, limit=limit)  # type: ignore[no-any-return]

    def get(self, webhook_id: str) -> Subscription:
        return self.subscriptions.get(webhook_id)  # type: ignore[no-any-return]

    def update(self, webhook_id: str, body: WebhookPatch, *, from_loopback: bool = False) -> Subscription:
        if body.url is not None:
            if self.get(webhook_id).listener:
                self._checked_listener(body.url, from_loopback)
            else:
                self._checked(body.url)
        changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
        if changes.get("status") == "active":
            changes.update(failing_since=None, disabled_reason=None)
        return self.subscriptions.update(webhook_id, **changes)  # type: ignore[no-any-return]

    def delete(self, webhook_id: str) -> None:
        self.subscriptions.delete(webhook_id)

    def rotate(self, webhook_id: str, body: Rotate) -> dict[str, Any]:
        now = self._now()
        secret = self.subscriptions.rotate(webhook_id, grace_seconds=body.grace_seconds, now=now)
        return {"secret": secret, "previous_valid_until": iso(now + dt.timedelta(seconds=body.grace_seconds))}

    def test(self, webhook_id: str) -> Queued:
        sub = self.get(webhook_id)
        now = self._now()
        message = operational_message("webhook.test", f"webhook.test.{sub.id}.{iso(now)}", now, {"webhook_id": sub.id})
        self.tables.requeue(Enqueued(message.id, sub.id, message.type, message.body, 0), now)
        return Queued(queued=1)

    def deliveries(
        self, webhook_id: str, *, status: str | None, since: dt.datetime | None, until: dt.datetime | None,
        after: str | None, limit: int,
    ) -> list[dict[str, Any]]:
        """Up to `limit` messages after the message id `after`, each with every attempt at it."""
        self.get(webhook_id)
        where, params = ["subscription_id = ?"], [webhook_id]
        for clause, value in (("status = ?", status), ("created_at >= ?", since and iso(since)),
                              ("created_at <= ?", until and iso(until)), ("message_id > ?", after)):
            if value:
                where.append(clause)
                params.append(value)
        rows: list[dict[str, Any]] = self.tables.run(
            "SELECT message_id, type, position, created_at, status, attempts, next_attempt_at, last_status FROM parley_outbox "
            f"WHERE {' AND '.join(where)} ORDER BY message_id LIMIT ?", (*params, limit),
        )
        for row in rows:
            row["id"] = row["message_id"]
            row["attempt_log"] = self.tables.run(
                "SELECT attempt, attempted_at, status_code, latency_ms, response_head, error FROM parley_delivery_attempts "
                "WHERE message_id = ? AND subscription_id = ? ORDER BY attempt", (row["message_id"], webhook_id),
            )
        return rows

    def retry(self, webhook_id: str, delivery_id: str) -> Queued:
        rows = self.tables.run("SELECT * FROM parley_outbox WHERE subscription_id = ? AND message_id = ?", (webhook_id, delivery_id))
        if not rows:
            raise DeliveryNotFoundError(webhook_id, delivery_id)
        self._requeue(webhook_id, rows[0])
        return Queued(queued=1)

    def recover(self, webhook_id: str, window: Window) -> Queued:
        self.get(webhook_id)
        rows = self.tables.run(
            "SELECT * FROM parley_outbox WHERE subscription_id = ? AND status IN ('failed', 'skipped') AND created_at >= ? AND created_at <= ?",
            (webhook_id, iso(window.since), iso(window.until or self._now())),
        )
        for row in rows:
            self._requeue(webhook_id, row)
        return Queued(queued=len(rows))

    def replay(self, webhook_id: str, body: Replay) -> Queued:
        self.get(webhook_id)
        return Queued(queued=self.webhooks.relay.replay(webhook_id, body.after_position))

    def _requeue(self, webhook_id: str, row: dict[str, Any]) -> None:
        self.tables.requeue(Enqueued(row["message_id"], webhook_id, row["type"], row["body"].encode(), row["position"]), self._now())
