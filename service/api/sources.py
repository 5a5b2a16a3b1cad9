"""The source registry: outlets and official bodies, with their kind and default reliability."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response
from service.http.routes import get, post
from litestar.di import NamedDependency
from litestar.params import RawBody

from service.auth import Principal
from service.http.auth import require
from service.http.params import Limit
from service.http.reads import Reads
from service.http.requests import decode, problems, require_json
from service.queries.params import Page, decode_name_cursor
from service.queries.sources import SourceCreate, SourceRecord, SourceRegistry, source, sources_page


class SourceController(Controller):
    path = "/v1/sources"
    tags = ["sources"]

    @post(
        "/",
        operation_id="registerSource",
        summary="Register a source (outlet or official body) with its kind and default reliability",
        guards=[require("reporter")],
        status_code=201,
        responses=problems(403, 409, 413, 415, 422),
        sync_to_thread=True,
    )
    def create(
        self, request: Request[Any, Any, Any], body: RawBody, sources: NamedDependency[SourceRegistry], principal: NamedDependency[Principal]
    ) -> Response[SourceRecord]:
        require_json(request)
        record = sources.create(decode(body, SourceCreate, title="Invalid source"), created_by=principal.name)
        return Response(record, status_code=201, headers={"Location": f"/v1/sources/{record.id}"})

    @get(
        "/",
        operation_id="listSources",
        summary="Registered sources by id",
        guards=[require("reader")],
        responses=problems(),
        sync_to_thread=True,
    )
    def list_sources(self, reads: NamedDependency[Reads], limit: Limit = 100, cursor: str | None = None) -> Page:
        return reads.answer(None, sources_page, decode_name_cursor(cursor), limit)

    @get(
        "/{source_id:str}",
        operation_id="getSource",
        summary="One registered source",
        guards=[require("reader")],
        responses=problems(404),
        sync_to_thread=True,
    )
    def get_source(self, reads: NamedDependency[Reads], source_id: str) -> SourceRecord:
        return reads.answer(None, source, source_id)
