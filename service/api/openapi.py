"""Request bodies in the OpenAPI schema: handlers decode their own bodies, so declare them here."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, Reference, RequestBody

from events.payloads import AnyEvent
from service.api.keys import KeyCreate
from service.api.negotiations import EventBatch, NegotiationCreate
from service.api.sources import SourceCreate

_REF = "#/components/schemas/{name}"

# (path, method) -> (the types the body may be, one of them; a description)
BODIES: dict[tuple[str, str], tuple[tuple[Any, ...], str]] = {
    ("/v1/negotiations", "post"): ((NegotiationCreate,), "The negotiation to open."),
    ("/v1/negotiations/{negotiation_id}/events", "post"): (
        (AnyEvent, EventBatch),
        "One event `{\"type\": ...}` or a batch `{\"events\": [...]}` stored all or nothing.",
    ),
    ("/v1/keys", "post"): ((KeyCreate,), "The key to create."),
    ("/v1/sources", "post"): ((SourceCreate,), "The source to register."),
}


def document_request_bodies(app: Litestar) -> None:
    openapi = app.openapi_schema
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


def _as_ref(schema: dict[str, Any]) -> Any:
    if set(schema) == {"$ref"}:
        return Reference(ref=schema["$ref"])
    return schema
