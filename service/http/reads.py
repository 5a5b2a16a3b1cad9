"""Which store a request reads (service/queries/store.py decides), said back in `X-Parley-Read-From`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.followers.tables import ViewSpec
from service.queries.store import ReadSides, ReadStore, Side, answer, view_store

T = TypeVar("T")
READ_FROM_HEADER = "X-Parley-Read-From"

@dataclasses.dataclass(frozen=True)
class Reads:
    """The read sides as one request uses them: it answers on the right store and remembers which."""

    sides: ReadSides
    _state: dict[str, Any]

    def _mark(self, side: Side) -> None:
        self._state["read_from"] = side

    def answer(self, min_position: int | None, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`work(store, *args, **kwargs)` on the store this request should read (service/queries/store.py)."""
        return answer(self.sides, min_position, work, *args, mark=self._mark, **kwargs)

    def view(self, spec: ViewSpec, min_position: int | None) -> ReadStore | None:
        return view_store(self.sides, spec, min_position, self._mark)

    @property
    def primary(self) -> ReadStore:
        return self.sides.primary


def read_from_header(app: ASGIApp) -> ASGIApp:
    """Say which store answered a query (`X-Parley-Read-From: replica|primary`), for tests and operators."""
    name = READ_FROM_HEADER.lower().encode()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # type: ignore[typeddict-item]

        async def send_with_side(message: Message) -> None:
            if message["type"] == "http.response.start" and (side := state.get("read_from")):
                message["headers"] = [*message.get("headers", []), (name, side.encode())]
            await send(message)

        await app(scope, receive, send_with_side)

    return middleware
