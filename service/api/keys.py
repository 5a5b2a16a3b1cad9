"""Access keys, for admins."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response
from service.http.routes import delete, get, post
from litestar.di import NamedDependency
from litestar.params import RawBody

from service.auth import KeyCreate, KeyRecord, KeyStore, NewKey, Principal
from service.http.auth import require
from service.http.params import Limit
from service.http.requests import decode, problems, require_json
from service.queries.params import Page, decode_name_cursor, encode_name_cursor, peek


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    guards = [require("admin")]

    @post(
        "/", operation_id="createKey", summary="Create an access key (shown once)", status_code=201,
        responses=problems(403, 409, 413, 415, 422), sync_to_thread=True,
    )
    def create(self, request: Request[Any, Any, Any], body: RawBody, keys: NamedDependency[KeyStore], principal: NamedDependency[Principal]) -> NewKey:
        require_json(request)
        given = decode(body, KeyCreate, title="Invalid key")
        return keys.create(name=given.name, role=given.role, created_by=principal.name)

    @get("/", operation_id="listKeys", summary="List access keys (never their secrets)", responses=problems(403), sync_to_thread=True)
    def list_keys(self, keys: NamedDependency[KeyStore], limit: Limit = 100, cursor: str | None = None) -> Page:
        found = keys.list(after=decode_name_cursor(cursor), limit=limit + 1)
        return Page(*peek(found, limit, lambda key: encode_name_cursor(key.name)))

    @get("/{key_id:str}", operation_id="getKey", summary="One access key", responses=problems(403, 404), sync_to_thread=True)
    def get_key(self, keys: NamedDependency[KeyStore], key_id: str) -> KeyRecord:
        return keys.get(key_id)

    @delete(
        "/{key_id:str}", operation_id="revokeKey", summary="Revoke an access key", status_code=200,
        responses=problems(403, 404), sync_to_thread=True,
    )
    def revoke(self, keys: NamedDependency[KeyStore], principal: NamedDependency[Principal], key_id: str) -> Response[KeyRecord]:
        return Response(keys.revoke(key_id, revoked_by=principal.name), status_code=200)
