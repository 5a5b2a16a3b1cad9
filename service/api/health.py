"""Liveness and readiness."""

from __future__ import annotations

import msgspec
from service.http.routes import get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from events.application import ParleyLog
from service.http.problems import PROBLEM, FieldError, Problem, ProblemError
from service.queries.progress import Followers, read_progress, views_behind
from service.settings import Settings


class Readiness(msgspec.Struct, frozen=True):
    status: str
    position: int
    lag: dict[str, int]


@get("/health", operation_id="health", summary="The process is up", tags=["operations"], sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    operation_id="ready",
    summary="The store answers and the persisted views keep up",
    description="503 when the store cannot be reached, or when a persisted view is more than PARLEY_READY_MAX_LAG events "
    "behind the log (when that is set). `lag` is each view's distance from the head, in events.",
    tags=["operations"],
    responses={
        503: ResponseSpec(
            data_container=Problem, media_type=PROBLEM,
            description="The store is unreachable, or a persisted view lags the log by more than PARLEY_READY_MAX_LAG events.",
        )
    },
    sync_to_thread=True,
)
def ready(log: NamedDependency[ParleyLog], followers: NamedDependency[Followers], settings: NamedDependency[Settings]) -> Readiness:
    progress = read_progress(log, followers)
    bound = settings.ready_max_lag
    behind = views_behind(progress, bound)
    if behind:
        raise ProblemError(
            503, "Not ready", "; ".join(f"view {name} is {lag} events behind the log" for name, lag in sorted(behind.items())),
            [FieldError(f"views.{name}", f"{lag} events behind the log; at most {bound} (PARLEY_READY_MAX_LAG)")
             for name, lag in sorted(behind.items())],
            headers={"Retry-After": "5"},
        )
    return Readiness(status="ready", position=progress.head, lag=progress.view_lag())
