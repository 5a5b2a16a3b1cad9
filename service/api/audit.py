"""Audit: who recorded what, an event's history, and the tamper-evident chain with signed checkpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import QueryParameter

from events.application import envelope
from events.audit import ChainReport, Checkpoint
from events.errors import KeyNotFoundError
from events.payloads import AUDIT_STREAM
from service.api.common import (
    Page,
    decode_cursor,
    encode_cursor,
    in_thread,
    log_of,
    peek,
    problems,
)
from service.api.negotiations import Limit
from service.auth import require
from service.problems import FieldError, ProblemError
from service.reads import ReadPosition, ReadStore, read
from service.signing import Signer


class PublicKey(msgspec.Struct, frozen=True):
    key_id: str
    algorithm: str
    public_key: str
    pem: str


class Recorded(msgspec.Struct, frozen=True):
    negotiation_id: str
    events: int
    first_recorded_at: str
    last_recorded_at: str


class PrincipalAudit(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    key: Any
    events_recorded: int
    negotiations: list[Recorded]
    key_events: list[dict[str, Any]]


class History(msgspec.Struct, frozen=True):
    event_id: str
    records: list[dict[str, Any]]


def _signer(request: Request[Any, Any, Any]) -> Signer:
    return request.app.state.signer


def _utc(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ProblemError(400, "Bad request", f"{field} needs a time zone offset or Z", [FieldError(field, "needs an offset or Z")])
    return value


class AuditController(Controller):
    path = "/v1"
    tags = ["audit"]

    @get("/audit/verify", operation_id="verifyChain", summary="Recompute the hash chain over the whole log",
         guards=[require("reader")], responses=problems())
    async def verify(self, request: Request[Any, Any, Any]) -> ChainReport:
        report, _ = await in_thread(log_of(request).verify)
        return report

    @get("/audit/checkpoint", operation_id="getCheckpoint", summary="The log's head, signed with the server's Ed25519 key",
         guards=[require("reader")], responses=problems())
    async def checkpoint(self, request: Request[Any, Any, Any]) -> Checkpoint:
        log = log_of(request)
        head = await in_thread(log.head)
        if head == 0:
            return _signer(request).checkpoint(0, "0" * 64, "")
        appended = await in_thread(lambda: log.feed(after=head - 1, limit=1)[0][0])
        recorded_at = appended.record.recorded_at.isoformat().replace("+00:00", "Z")
        return _signer(request).checkpoint(appended.position, appended.hash, recorded_at)

    @get("/audit/public-key", operation_id="getPublicKey", summary="The key that signs checkpoints",
         responses={429: problems()[429]})
    async def public_key(self, request: Request[Any, Any, Any]) -> PublicKey:
        signer = _signer(request)
        return PublicKey(key_id=signer.key_id, algorithm="Ed25519", public_key=signer.public_key_b64, pem=signer.public_key_pem)

    @get("/events/{event_id:str}/history", operation_id="getEventHistory",
         summary="An event, then every correction and retraction of it, each with who recorded it and when",
         guards=[require("reader")], responses=problems(404, 422))
    async def history(self, request: Request[Any, Any, Any], event_id: str, min_position: ReadPosition = None) -> History:
        records = await read(request, lambda r: r.log.history(event_id.lower()), min_position)
        return History(event_id=event_id.lower(), records=[envelope(a) for a in records])

    @get("/audit/principals/{name:str}", operation_id="getPrincipalAudit",
         summary="What a key recorded, and when it was created and revoked, by whom", guards=[require("reader")],
         responses=problems(404))
    async def principal(self, request: Request[Any, Any, Any], name: str) -> PrincipalAudit:
        log = log_of(request)
        keys = request.app.state.key_store

        def gather() -> PrincipalAudit:
            rows = log.run(
                "SELECT negotiation_id, COUNT(*) AS n, MIN(recorded_at) AS first_at, MAX(recorded_at) AS last_at "
                "FROM parley_event_index WHERE recorded_by = ? AND negotiation_id <> ? GROUP BY negotiation_id ORDER BY negotiation_id",
                (name, AUDIT_STREAM),
            )
            audit_ids = [r["event_id"] for r in log.run(
                "SELECT event_id FROM parley_event_index WHERE negotiation_id = ? ORDER BY position", (AUDIT_STREAM,))]
            key_events = [envelope(a) for a in (log.event(i) for i in audit_ids)
                          if getattr(a.record.event, "name", None) == name]
            try:
                key = keys.get(name)
            except KeyNotFoundError:
                key = None
            if key is None and not rows and not key_events:
                raise ProblemError(404, "Principal not found", f"no key named {name!r} and nothing recorded by it")
            return PrincipalAudit(
                name=name, key=key, events_recorded=sum(int(r["n"]) for r in rows),
                negotiations=[Recorded(r["negotiation_id"], int(r["n"]), r["first_at"], r["last_at"]) for r in rows],
                key_events=key_events,
            )

        return await in_thread(gather)

    @get("/audit/events", operation_id="listAuditEvents",
         summary="Who recorded what, when, from which request and source", guards=[require("reader")], responses=problems(422))
    async def audit_events(
        self,
        request: Request[Any, Any, Any],
        recorded_by: str | None = None,
        source: Annotated[str | None, QueryParameter(description="Source name or registered id (case-blind).")] = None,
        negotiation: str | None = None,
        recorded_from: dt.datetime | None = None,
        recorded_to: dt.datetime | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
        min_position: ReadPosition = None,
    ) -> Page:
        start, end = _utc(recorded_from, "recorded_from"), _utc(recorded_to, "recorded_to")
        wanted_source = source.lower() if source else None

        def keep(item: Any) -> bool:
            record = item.record
            event_source = record.event.source
            return (
                (recorded_by is None or record.recorded_by == recorded_by)
                and (negotiation is None or record.negotiation_id == negotiation)
                and (start is None or record.recorded_at >= start)
                and (end is None or record.recorded_at <= end)
                and (wanted_source is None or (event_source is not None and wanted_source in
                                               {event_source.name.lower(), (event_source.id or "").lower()}))
            )

        def scan(store: ReadStore) -> list[Any]:
            after, found = decode_cursor(cursor) or 0, []
            while True:
                page, more = store.log.feed(after=after, limit=1000)
                for item in page:
                    after = item.position
                    if keep(item):
                        found.append(item)
                        if len(found) > limit:
                            return found
                if more is None:
                    return found

        items, more = peek(await read(request, scan, min_position), limit, lambda appended: encode_cursor(appended.position))
        return Page(items=[envelope(item) for item in items], next=more)
