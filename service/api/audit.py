"""Audit: who recorded what, an event's history, and the tamper-evident chain with signed checkpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request
from service.http.routes import get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter, RawBody

from events.application import ParleyLog
from events.audit import ChainReport, Checkpoint
from service.auth import KeyStore
from service.http.auth import require
from service.http.params import Limit, ReadPosition
from service.http.reads import Reads
from service.http.requests import decode, problems, require_json
from service.queries.audit import AuditFilter, PrincipalAudit, audit_events_page, checkpoint, principal_audit, utc, verify_log
from service.queries.negotiations import History, history
from service.queries.params import Page, decode_cursor, ordered
from service.signing import Signer


class PublicKey(msgspec.Struct, frozen=True):
    key_id: str
    algorithm: str
    public_key: str
    pem: str


class AuditController(Controller):
    path = "/v1"
    tags = ["audit"]

    @get("/audit/verify", operation_id="verifyChain",
         summary="Recompute the hash chain; check the index against the hashed events and the keys table against the key events",
         guards=[require("reader")], responses=problems(), sync_to_thread=True)
    def verify(self, log: NamedDependency[ParleyLog], keys: NamedDependency[KeyStore], signer: NamedDependency[Signer]) -> ChainReport:
        return verify_log(log, keys, signer)

    @post("/audit/verify", operation_id="verifyChainAgainstCheckpoint",
          summary="Verify as GET does, and that the log still extends a checkpoint someone kept (its JSON as the body)",
          guards=[require("reader")], status_code=200, responses=problems(413, 415, 422), sync_to_thread=True)
    def verify_against(
        self, request: Request[Any, Any, Any], body: RawBody, log: NamedDependency[ParleyLog], keys: NamedDependency[KeyStore],
        signer: NamedDependency[Signer],
    ) -> ChainReport:
        require_json(request)
        return verify_log(log, keys, signer, decode(body, Checkpoint, title="Invalid checkpoint"))

    @get("/audit/checkpoint", operation_id="getCheckpoint", summary="The log's head, signed with the server's Ed25519 key",
         guards=[require("reader")], responses=problems(409), sync_to_thread=True)
    def checkpoint(self, log: NamedDependency[ParleyLog], signer: NamedDependency[Signer]) -> Checkpoint:
        return checkpoint(log, signer)

    @get("/audit/public-key", operation_id="getPublicKey", summary="The key that signs checkpoints",
         responses={429: problems()[429]}, sync_to_thread=False)
    def public_key(self, signer: NamedDependency[Signer]) -> PublicKey:
        return PublicKey(key_id=signer.key_id, algorithm="Ed25519", public_key=signer.public_key_b64, pem=signer.public_key_pem)

    @get("/events/{event_id:str}/history", operation_id="getEventHistory",
         summary="An event, then every correction and retraction of it, each with who recorded it and when",
         guards=[require("reader")], responses=problems(404, 422), sync_to_thread=True)
    def history(self, reads: NamedDependency[Reads], event_id: str, min_position: ReadPosition = None) -> History:
        return reads.answer(min_position, history, event_id)

    @get("/audit/principals/{name:str}", operation_id="getPrincipalAudit",
         summary="What a key recorded, and when it was created and revoked, by whom", guards=[require("reader")],
         responses=problems(404), sync_to_thread=True)
    def principal(self, log: NamedDependency[ParleyLog], keys: NamedDependency[KeyStore], name: str) -> PrincipalAudit:
        return principal_audit(log, keys, name)

    @get("/audit/events", operation_id="listAuditEvents",
         summary="Who recorded what, when, from which request and source", guards=[require("reader")],
         responses=problems(422), sync_to_thread=True)
    def audit_events(
        self,
        reads: NamedDependency[Reads],
        recorded_by: str | None = None,
        source: Annotated[str | None, QueryParameter(description="Source name or registered id (case-blind).")] = None,
        negotiation: str | None = None,
        recorded_from: dt.datetime | None = None,
        recorded_to: dt.datetime | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
        min_position: ReadPosition = None,
    ) -> Page:
        start, end = utc(recorded_from, "recorded_from"), utc(recorded_to, "recorded_to")
        ordered(start, end, ("recorded_from", "recorded_to"))
        keep = AuditFilter(recorded_by, source, negotiation, start, end)
        return reads.answer(min_position, audit_events_page, keep, decode_cursor(cursor) or 0, limit)
