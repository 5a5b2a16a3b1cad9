"""Webhook subscriptions, their deliveries, and recovery: retry, recover a window, replay from a position."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import QueryParameter

from service.api.common import (
    Page,
    decode,
    decode_name_cursor,
    encode_name_cursor,
    in_thread,
    peek,
    principal,
    problems,
    require_json,
)
from service.api.negotiations import Limit
from service.auth import require
from service.problems import FieldError, ProblemError
from service.webhooks.delivery import Relay
from service.webhooks.messages import operational_message
from service.webhooks.outbound import DestinationRefusedError, check_destination
from service.webhooks.store import Enqueued, iso
from service.webhooks.subscriptions import Subscription, Subscriptions

EventType = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$|^\*$", max_length=100)]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]


class WebhookCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: Annotated[list[EventType], msgspec.Meta(max_length=50)] = []
    negotiations: Annotated[list[Slug], msgspec.Meta(max_length=100)] = []
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None


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


def _subs(request: Request[Any, Any, Any]) -> Subscriptions:
    return request.app.state.webhooks.subscriptions


def _now(request: Request[Any, Any, Any]) -> dt.datetime:
    return request.app.state.webhooks.clock()


def _checked(request: Request[Any, Any, Any], url: str) -> None:
    hooks = request.app.state.webhooks
    try:
        check_destination(url, allow_hosts=hooks.allow_hosts, resolver=hooks.resolver)
    except DestinationRefusedError as refused:
        raise ProblemError(422, "Destination refused", refused.reason, [FieldError("url", refused.reason)]) from None


async def _body(request: Request[Any, Any, Any], type_: type[Any]) -> Any:
    require_json(request)
    return decode(await request.body(), type_, title="Invalid webhook request")


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    guards = [require("admin")]

    @post("/", operation_id="createWebhook", summary="Subscribe a URL; the signing secret is shown once", status_code=201,
          responses=problems(403, 413, 415, 422))
    async def create(self, request: Request[Any, Any, Any]) -> CreatedWebhook:
        body: WebhookCreate = await _body(request, WebhookCreate)
        await in_thread(_checked, request, body.url)
        sub, secret = await in_thread(
            _subs(request).create, url=body.url, event_types=body.event_types, negotiations=body.negotiations,
            description=body.description, created_by=principal(request).name, now=_now(request),
        )
        return CreatedWebhook(webhook=sub, secret=secret)

    @get("/", operation_id="listWebhooks", summary="Subscriptions", responses=problems(403))
    async def list_webhooks(self, request: Request[Any, Any, Any], limit: Limit = 100, cursor: str | None = None) -> Page:
        found = await in_thread(_subs(request).list, after=decode_name_cursor(cursor), limit=limit + 1)
        return Page(*peek(found, limit, lambda subscription: encode_name_cursor(subscription.id)))

    @get("/{webhook_id:str}", operation_id="getWebhook", summary="One subscription", responses=problems(403, 404))
    async def get_webhook(self, request: Request[Any, Any, Any], webhook_id: str) -> Subscription:
        return await in_thread(_subs(request).get, webhook_id)

    @patch("/{webhook_id:str}", operation_id="updateWebhook", summary="Change a subscription (re-enable with status active)",
           responses=problems(403, 404, 413, 415, 422))
    async def update(self, request: Request[Any, Any, Any], webhook_id: str) -> Subscription:
        body: WebhookPatch = await _body(request, WebhookPatch)
        if body.url is not None:
            await in_thread(_checked, request, body.url)
        changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
        if changes.get("status") == "active":
            changes.update(failing_since=None, disabled_reason=None)
        return await in_thread(_subs(request).update, webhook_id, **changes)

    @delete("/{webhook_id:str}", operation_id="deleteWebhook", summary="Unsubscribe; queued messages are dropped",
            status_code=204, responses=problems(403, 404))
    async def remove(self, request: Request[Any, Any, Any], webhook_id: str) -> None:
        await in_thread(_subs(request).delete, webhook_id)

    @post("/{webhook_id:str}/rotate-secret", operation_id="rotateWebhookSecret",
          summary="A new secret; both sign until the grace period ends", status_code=200, responses=problems(403, 404, 413, 415, 422))
    async def rotate(self, request: Request[Any, Any, Any], webhook_id: str) -> dict[str, Any]:
        body: Rotate = await _body(request, Rotate)
        secret = await in_thread(_subs(request).rotate, webhook_id, grace_seconds=body.grace_seconds, now=_now(request))
        return {"secret": secret, "previous_valid_until": iso(_now(request) + dt.timedelta(seconds=body.grace_seconds))}

    @post("/{webhook_id:str}/test", operation_id="testWebhook", summary="Queue a webhook.test message", status_code=202,
          responses=problems(403, 404))
    async def test(self, request: Request[Any, Any, Any], webhook_id: str) -> Queued:
        sub = await in_thread(_subs(request).get, webhook_id)
        now = _now(request)
        message = operational_message("webhook.test", f"webhook.test.{sub.id}.{iso(now)}", now, {"webhook_id": sub.id})
        tables = request.app.state.webhooks.tables
        await in_thread(tables.requeue, Enqueued(message.id, sub.id, message.type, message.body, 0), now)
        return Queued(queued=1)

    @get("/{webhook_id:str}/deliveries", operation_id="listWebhookDeliveries",
         summary="Messages and every attempt: time, status code, latency, the first 2 kB of the answer", responses=problems(403, 404))
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        webhook_id: str,
        status: Annotated[str | None, QueryParameter(pattern="^(pending|delivering|delivered|failed|skipped)$")] = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        await in_thread(_subs(request).get, webhook_id)
        tables = request.app.state.webhooks.tables
        where, params = ["subscription_id = ?"], [webhook_id]
        if status:
            where.append("status = ?")
            params.append(status)
        if since:
            where.append("created_at >= ?")
            params.append(iso(since))
        if until:
            where.append("created_at <= ?")
            params.append(iso(until))
        if cursor:
            where.append("message_id > ?")
            params.append(decode_name_cursor(cursor))
        found = await in_thread(
            tables.run,
            "SELECT message_id, type, position, created_at, status, attempts, next_attempt_at, last_status FROM parley_outbox "
            f"WHERE {' AND '.join(where)} ORDER BY message_id LIMIT ?", (*params, limit + 1),
        )
        rows, more = peek(found, limit, lambda row: encode_name_cursor(row["message_id"]))
        for row in rows:
            row["id"] = row["message_id"]
            row["attempt_log"] = await in_thread(
                tables.run,
                "SELECT attempt, attempted_at, status_code, latency_ms, response_head, error FROM parley_delivery_attempts "
                "WHERE message_id = ? AND subscription_id = ? ORDER BY attempt", (row["message_id"], webhook_id),
            )
        return Page(items=rows, next=more)

    @post("/{webhook_id:str}/deliveries/{delivery_id:str}/retry", operation_id="retryWebhookDelivery",
          summary="Send one message again now", status_code=202, responses=problems(403, 404))
    async def retry(self, request: Request[Any, Any, Any], webhook_id: str, delivery_id: str) -> Queued:
        tables = request.app.state.webhooks.tables
        rows = await in_thread(tables.run, "SELECT * FROM parley_outbox WHERE subscription_id = ? AND message_id = ?",
                               (webhook_id, delivery_id))
        if not rows:
            raise ProblemError(404, "Delivery not found", f"no delivery {delivery_id!r} for webhook {webhook_id!r}")
        row = rows[0]
        await in_thread(tables.requeue, Enqueued(row["message_id"], webhook_id, row["type"], row["body"].encode(), row["position"]), _now(request))
        return Queued(queued=1)

    @post("/{webhook_id:str}/recover", operation_id="recoverWebhook", summary="Send again the messages that failed in a window",
          status_code=202, responses=problems(403, 404, 413, 415, 422))
    async def recover(self, request: Request[Any, Any, Any], webhook_id: str) -> Queued:
        body: Window = await _body(request, Window)
        await in_thread(_subs(request).get, webhook_id)
        tables = request.app.state.webhooks.tables
        rows = await in_thread(
            tables.run,
            "SELECT * FROM parley_outbox WHERE subscription_id = ? AND status IN ('failed', 'skipped') AND created_at >= ? AND created_at <= ?",
            (webhook_id, iso(body.since), iso(body.until or _now(request))),
        )
        for row in rows:
            await in_thread(tables.requeue, Enqueued(row["message_id"], webhook_id, row["type"], row["body"].encode(), row["position"]), _now(request))
        return Queued(queued=len(rows))

    @post("/{webhook_id:str}/replay", operation_id="replayWebhook",
          summary="Send again everything after a log position, with the same webhook-ids", status_code=202,
          responses=problems(403, 404, 413, 415, 422))
    async def replay(self, request: Request[Any, Any, Any], webhook_id: str) -> Queued:
        body: Replay = await _body(request, Replay)
        await in_thread(_subs(request).get, webhook_id)
        relay: Relay = request.app.state.webhooks.relay
        return Queued(queued=await in_thread(relay.replay, webhook_id, body.after_position))
