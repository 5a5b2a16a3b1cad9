"""The API documentation: Swagger UI from a pinned package (no CDN), and what litestar cannot see in the
handlers, declared in the OpenAPI schema: request bodies (handlers decode their own), the media types of
exports (streamed), and links from a write to what reads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.openapi.spec import (
    Link,
    OpenAPI,
    OpenAPIMediaType,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from events.audit import Checkpoint
from events.payloads import AnyEvent
from service.api.negotiations import EventBatch, NegotiationCreate
from service.auth import KeyCreate
from service.queries.exports import MEDIA_TYPES
from service.queries.sources import SourceCreate
from service.webhooks.admin import Replay, Rotate, WebhookCreate, WebhookPatch, Window

_REF = "#/components/schemas/{name}"

# Swagger UI's scripts and styles come from the swagger-ui-py package pinned in pyproject.toml (its static
# folder only: the package's own code, for other frameworks, is never imported), served here, so /schema
# works on a machine with no internet; its page links nothing else (no favicon from a CDN).
_SWAGGER_ASSETS = "/static/swagger-ui"
_SWAGGER_STATIC = Path(next(iter(importlib.util.find_spec("swagger_ui").submodule_search_locations or ()))) / "static"  # type: ignore[union-attr]
swagger_assets = create_static_files_router(
    path=_SWAGGER_ASSETS, directories=[_SWAGGER_STATIC], name="swagger-ui", include_in_schema=False
)


def api_docs() -> SwaggerRenderPlugin:
    """Swagger UI at /schema (and /schema/swagger) on the bundled assets."""
    return SwaggerRenderPlugin(
        path="/swagger",
        js_url=f"{_SWAGGER_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{_SWAGGER_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{_SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
        favicon="",
    )

# (path, method) -> (the types the body may be, one of them; a description)
BODIES: dict[tuple[str, str], tuple[tuple[Any, ...], str]] = {
    ("/v1/negotiations", "post"): ((NegotiationCreate,), "The negotiation to open."),
    ("/v1/negotiations/{negotiation_id}/events", "post"): (
        (AnyEvent, EventBatch),
        "One event `{\"type\": ...}` or a batch `{\"events\": [...]}` stored all or nothing.",
    ),
    ("/v1/keys", "post"): ((KeyCreate,), "The key to create."),
    ("/v1/sources", "post"): ((SourceCreate,), "The source to register."),
    ("/v1/audit/verify", "post"): ((Checkpoint,), "A checkpoint someone kept, as `GET /v1/audit/checkpoint` gave it."),
    ("/v1/webhooks", "post"): ((WebhookCreate,), "The URL to subscribe and what to send it."),
    ("/v1/webhooks/{webhook_id}", "patch"): ((WebhookPatch,), "The fields to change; the others stay."),
    ("/v1/webhooks/{webhook_id}/rotate-secret", "post"): ((Rotate,), "How long the old secret still signs; `{}` for a day."),
    ("/v1/webhooks/{webhook_id}/recover", "post"): ((Window,), "The window whose failed messages to send again."),
    ("/v1/webhooks/{webhook_id}/replay", "post"): ((Replay,), "Send again everything after this log position."),
}
# (path, method) -> the media types its 200 answer may have, one per `format`
EXPORTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("/v1/negotiations/{negotiation_id}/export", "get"): tuple(MEDIA_TYPES.values()),
}

_NEGOTIATION = {"negotiation_id": "$response.body#/id"}
_APPENDED_TO = {"negotiation_id": "$request.path.negotiation_id", "min_position": "$response.body#/position"}
_EVENT = {"event_id": "$response.body#/events/0/event_id"}
_WRITTEN = {"min_position": "$response.body#/position"}
_WEBHOOK = {"webhook_id": "$response.body#/webhook/id"}
# (path, method, status) -> {link name: (operationId, its parameters from this answer)}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("/v1/negotiations", "post", "201"): {
        "AppendEvents": ("appendEvents", _NEGOTIATION),
        "ReadState": ("getNegotiationState", {**_NEGOTIATION, **_WRITTEN}),
        "ReadEvents": ("listNegotiationEvents", _NEGOTIATION),
        "ReadTimeline": ("getNegotiationTimeline", {**_NEGOTIATION, **_WRITTEN}),
    },
    ("/v1/negotiations/{negotiation_id}/events", "post", "201"): {
        "AppendMore": ("appendEvents", {"negotiation_id": "$request.path.negotiation_id"}),
        "ReadState": ("getNegotiationState", _APPENDED_TO),
        "ReadStatePart": ("getNegotiationStatePart", _APPENDED_TO),
        "ReadStatements": ("listNegotiationStatements", _APPENDED_TO),
        "ReadTimeline": ("getNegotiationTimeline", _APPENDED_TO),
        "ReadClaims": ("listNegotiationClaims", _APPENDED_TO),
        "ReadEvent": ("getEvent", _EVENT),
        "ReadEventHistory": ("getEventHistory", _EVENT),
        "ReadDeadlines": ("listDeadlines", _WRITTEN),
        "ReadMeasures": ("listMeasures", _WRITTEN),
    },
    ("/v1/webhooks", "post", "201"): {
        "ReadWebhook": ("getWebhook", _WEBHOOK),
        "UpdateWebhook": ("updateWebhook", _WEBHOOK),
        "RotateSecret": ("rotateWebhookSecret", _WEBHOOK),
        "SendTest": ("testWebhook", _WEBHOOK),
        "ReadDeliveries": ("listWebhookDeliveries", _WEBHOOK),
        "Recover": ("recoverWebhook", _WEBHOOK),
        "Replay": ("replayWebhook", _WEBHOOK),
        "Delete": ("deleteWebhook", _WEBHOOK),
    },
}


def document_request_bodies(app: Litestar) -> None:
    """Declare what handlers read and stream themselves (request bodies, export media types, links)
    whenever litestar builds the OpenAPI document: on first use, not at every app's construction."""
    app.plugins.get(OpenAPIPlugin).__class__ = _DocumentedOpenAPIPlugin


class _DocumentedOpenAPIPlugin(OpenAPIPlugin):
    __slots__ = ()

    def _build_openapi(self) -> OpenAPI:
        openapi = super()._build_openapi()
        _document(openapi)
        return openapi


def _document(openapi: OpenAPI) -> None:
    types = [body for bodies, _ in BODIES.values() for body in bodies]
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    openapi.components.schemas.update(components)  # type: ignore[arg-type]
    found = iter(schemas)
    for (path, method), (bodies, description) in BODIES.items():
        alternatives = [next(found) for _ in bodies]
        schema = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
        operation = getattr(openapi.paths[path], method)  # type: ignore[index]
        operation.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=_as_ref(schema))},
            description=description,
            required=True,
        )
    for (path, method), media_types in EXPORTS.items():
        answer = getattr(openapi.paths[path], method).responses["200"]  # type: ignore[index]
        answer.content = {
            media_type: OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT if media_type.endswith("json") else OpenAPIType.STRING))
            for media_type in media_types
        }
    for (path, method, status), links in LINKS.items():
        answer = getattr(openapi.paths[path], method).responses[status]  # type: ignore[index]
        answer.links = {name: Link(operation_id=target, parameters=parameters) for name, (target, parameters) in links.items()}


def _as_ref(schema: dict[str, Any]) -> Any:
    if set(schema) == {"$ref"}:
        return Reference(ref=schema["$ref"])
    return schema
