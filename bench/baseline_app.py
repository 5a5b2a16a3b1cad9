"""The raw-framework baseline for the load test: one trivial litestar route, served like Parley."""

from __future__ import annotations

from litestar import Litestar, get


@get("/v1/ping", sync_to_thread=False)
def ping() -> dict[str, bool]:
    return {"ok": True}


def create_baseline() -> Litestar:
    return Litestar(route_handlers=[ping], debug=False, logging_config=None)
