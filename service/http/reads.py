"""Which store a request reads (service/queries/store.py decides), said back in `X-Parley-Read-From` (service/http/logs.py)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from litestar import Response
from litestar.openapi.datastructures import ResponseSpec

from events.application import ParleyLog
from projections.state import UNLIMITED, Budget
from service.followers.tables import ViewSpec
from service.queries.answers import Answers, Ask
from service.queries.store import ReadSides, ReadStore, Side, answer, view_store

T = TypeVar("T")
READ_FROM_HEADER = "X-Parley-Read-From"

@dataclasses.dataclass(frozen=True)
class Reads:
    """The read sides as one request uses them: it answers on the right store and remembers which."""

    sides: ReadSides
    _state: dict[str, Any]
    answers: Answers | None = None
    # the request's If-None-Match, and whether anyone may read (then proxies may share answers)
    if_none_match: str | None = None
    public: bool = False
    # how long this request's answer may compute (PARLEY_QUERY_TIMEOUT), from when the request got here
    budget: Budget = UNLIMITED

    @property
    def log(self) -> ParleyLog:
        """The primary's log: its clock says what "today" and "now" are."""
        return self.sides.primary.log

    def _mark(self, side: Side) -> None:
        self._state["read_from"] = side

    def answer(self, min_position: int | None, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`work(store, *args, **kwargs)` on the store this request should read (service/queries/store.py)."""
        return answer(self.sides, min_position, work, *args, mark=self._mark, **kwargs)

    async def cached(self, ask: Ask, min_position: int | None, work: Callable[..., T], *args: Any, **kwargs: Any) -> Response[T]:
        """`work`'s answer as encoded bytes with an ETag from its key, kept in the answer cache; 304 when the client has it.

        On the event loop: a kept answer, or one computed from memory (service/queries/answers.py, `answer_now`);
        any other miss reads the store, in a worker thread.
        Without a cache (PARLEY_ANSWER_CACHE_BYTES=0) the answer is computed and encoded as before, without an ETag.
        """
        answers = self.answers
        if answers is None or not answers.enabled:
            return Response(await anyio.to_thread.run_sync(functools.partial(self.answer, min_position, work, *args, **kwargs)))
        found = answers.answer_now(self.sides, ask, min_position, work, *args, mark=self._mark, **kwargs)
        if found is None:
            found = await anyio.to_thread.run_sync(
                functools.partial(answers.get, self.sides, ask, min_position, self.budget, work, *args, mark=self._mark, **kwargs)
            )
        # The key names the events and parameters; the echoed known_at may differ, so the validator is weak.
        headers = {"ETag": f'W/"{found.etag}"', "Cache-Control": _cache_control(found.settled, self.public)}
        if _matches(self.if_none_match, found.etag):
            return Response(b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(found.body, media_type="application/json", headers=headers)  # type: ignore[arg-type]

    def view(self, spec: ViewSpec, min_position: int | None) -> ReadStore | None:
        return view_store(self.sides, spec, min_position, self._mark)

    @property
    def primary(self) -> ReadStore:
        return self.sides.primary


def _cache_control(settled: bool, public: bool) -> str:
    scope = "public" if public else "private"
    return f"{scope}, max-age=31536000, immutable" if settled else f"{scope}, no-cache"


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: `*`, or any listed tag equal to ours under weak comparison."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == f'"{etag}"' for tag in if_none_match.split(","))


# For the OpenAPI document of routes answered through `Reads.cached`.
NOT_MODIFIED = {
    304: ResponseSpec(
        data_container=None, description="Not modified: the answer is the one the If-None-Match ETag names (no body)."
    )
}
