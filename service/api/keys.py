"""Access keys, for admins."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post

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
from service.auth import KeyRecord, KeyStore, NewKey, Role, require

KeyName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Who the key belongs to; becomes recorded_by.")]


class KeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: KeyName
    role: Role


def _keys(request: Request[Any, Any, Any]) -> KeyStore:
    return request.app.state.key_store


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    guards = [require("admin")]

    @post("/", operation_id="createKey", summary="Create an access key (shown once)", status_code=201, responses=problems(403, 409, 413, 415, 422))
    async def create(self, request: Request[Any, Any, Any]) -> NewKey:
        require_json(request)
        body = decode(await request.body(), KeyCreate, title="Invalid key")
        return await in_thread(_keys(request).create, name=body.name, role=body.role, created_by=principal(request).name)

    @get("/", operation_id="listKeys", summary="List access keys (never their secrets)", responses=problems(403))
    async def list_keys(self, request: Request[Any, Any, Any], limit: Limit = 100, cursor: str | None = None) -> Page:
        found = await in_thread(_keys(request).list, after=decode_name_cursor(cursor), limit=limit + 1)
        return Page(*peek(found, limit, lambda key: encode_name_cursor(key.name)))

    @get("/{key_id:str}", operation_id="getKey", summary="One access key", responses=problems(403, 404))
    async def get_key(self, request: Request[Any, Any, Any], key_id: str) -> KeyRecord:
        return await in_thread(_keys(request).get, key_id)

    @delete("/{key_id:str}", operation_id="revokeKey", summary="Revoke an access key", status_code=200, responses=problems(403, 404))
    async def revoke(self, request: Request[Any, Any, Any], key_id: str) -> Response[KeyRecord]:
        record = await in_thread(_keys(request).revoke, key_id, revoked_by=principal(request).name)
        return Response(record, status_code=200)
