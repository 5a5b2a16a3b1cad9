"""Webhook subscriptions, their deliveries, and recovery: retry, recover a window, replay from a position."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any

from litestar import Controller, Request
from service.http.routes import delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter, RawBody

from service.auth import Principal
from service.http.auth import require
from service.http.params import Limit
from service.http.requests import decode, problems, require_json
from service.queries.params import Page, decode_name_cursor, encode_name_cursor, peek
from service.webhooks.admin import CreatedWebhook, Queued, Replay, Rotate, WebhookAdmin, WebhookCreate, WebhookPatch, Window
from service.webhooks.subscriptions import Subscription


def _body(request: Request[Any, Any, Any], body: RawBody, type_: type[Any]) -> Any:
    require_json(request)
    return decode(body, type_, title="Invalid webhook request")


_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def _from_loopback(request: Request[Any, Any, Any]) -> bool:
    """The request's peer is this machine and it names no other client: a proxy on this machine forwards others."""
    if request.client is None or any(name in request.headers for name in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    guards = [require("admin")]

    @post("/", operation_id="createWebhook", summary="Subscribe a URL; the signing secret is shown once", status_code=201,
          responses=problems(403, 413, 415, 422), sync_to_thread=True)
    def create(self, request: Request[Any, Any, Any], body: RawBody, admin: NamedDependency[WebhookAdmin], principal: NamedDependency[Principal]) -> CreatedWebhook:
        return admin.create(_body(request, body, WebhookCreate), created_by=principal.name, from_loopback=_from_loopback(request))

    @get("/", operation_id="listWebhooks", summary="Subscriptions", responses=problems(403), sync_to_thread=True)
    def list_webhooks(self, admin: NamedDependency[WebhookAdmin], limit: Limit = 100, cursor: str | None = None) -> Page:
        found = admin.list(after=decode_name_cursor(cursor), limit=limit + 1)
        return Page(*peek(found, limit, lambda subscription: encode_name_cursor(subscription.id)))

    @get("/{webhook_id:str}", operation_id="getWebhook", summary="One subscription", responses=problems(403, 404), sync_to_thread=True)
    def get_webhook(self, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> Subscription:
        return admin.get(webhook_id)

    @patch("/{webhook_id:str}", operation_id="updateWebhook", summary="Change a subscription (re-enable with status active)",
           responses=problems(403, 404, 413, 415, 422), sync_to_thread=True)
    def update(self, request: Request[Any, Any, Any], body: RawBody, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> Subscription:
        return admin.update(webhook_id, _body(request, body, WebhookPatch), from_loopback=_from_loopback(request))

    @delete("/{webhook_id:str}", operation_id="deleteWebhook", summary="Unsubscribe; queued messages are dropped",
            status_code=204, responses=problems(403, 404), sync_to_thread=True)
    def remove(self, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> None:
        admin.delete(webhook_id)

    @post("/{webhook_id:str}/rotate-secret", operation_id="rotateWebhookSecret",
          summary="A new secret; both sign until the grace period ends", status_code=200,
          responses=problems(403, 404, 413, 415, 422), sync_to_thread=True)
    def rotate(self, request: Request[Any, Any, Any], body: RawBody, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> dict[str, Any]:
        return admin.rotate(webhook_id, _body(request, body, Rotate))

    @post("/{webhook_id:str}/test", operation_id="testWebhook", summary="Queue a webhook.test message", status_code=202,
          responses=problems(403, 404), sync_to_thread=True)
    def test(self, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> Queued:
        return admin.test(webhook_id)

    @get("/{webhook_id:str}/deliveries", operation_id="listWebhookDeliveries",
         summary="Messages and every attempt: time, status code, latency, the first 2 kB of the answer",
         responses=problems(403, 404), sync_to_thread=True)
    def deliveries(
        self,
        admin: NamedDependency[WebhookAdmin],
        webhook_id: str,
        status: Annotated[str | None, QueryParameter(pattern="^(pending|delivering|delivered|failed|skipped)$")] = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        after = decode_name_cursor(cursor) if cursor else None
        found = admin.deliveries(webhook_id, status=status, since=since, until=until, after=after, limit=limit + 1)
        return Page(*peek(found, limit, lambda row: encode_name_cursor(row["message_id"])))

    @post("/{webhook_id:str}/deliveries/{delivery_id:str}/retry", operation_id="retryWebhookDelivery",
          summary="Send one message again now", status_code=202, responses=problems(403, 404), sync_to_thread=True)
    def retry(self, admin: NamedDependency[WebhookAdmin], webhook_id: str, delivery_id: str) -> Queued:
        return admin.retry(webhook_id, delivery_id)

    @post("/{webhook_id:str}/recover", operation_id="recoverWebhook", summary="Send again the messages that failed in a window",
          status_code=202, responses=problems(403, 404, 413, 415, 422), sync_to_thread=True)
    def recover(self, request: Request[Any, Any, Any], body: RawBody, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> Queued:
        return admin.recover(webhook_id, _body(request, body, Window))

    @post("/{webhook_id:str}/replay", operation_id="replayWebhook",
          summary="Send again everything after a log position, with the same webhook-ids", status_code=202,
          responses=problems(403, 404, 413, 415, 422), sync_to_thread=True)
    def replay(self, request: Request[Any, Any, Any], body: RawBody, admin: NamedDependency[WebhookAdmin], webhook_id: str) -> Queued:
        return admin.replay(webhook_id, _body(request, body, Replay))
