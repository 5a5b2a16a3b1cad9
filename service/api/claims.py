"""Claims by subject: single, disputed, or confirmed / contradicted by the facts that settled them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import QueryParameter

from projections.claims import CLAIM_STATUSES, ClaimStatus, claims
from service.queries.live import LiveStates
from projections.state import view
from service.queries.timelimit import TimeLimit
from service.api.common import Page, decode_cursor, problems
from service.api.negotiations import Limit
from service.api.state import (
    AsOf,
    KnownAt,
    MinPosition,
    moment,
    time_limit,
    world_key,
    world_page,
)
from service.auth import require
from service.problems import FieldError, ProblemError
from service.reads import read


def _status(value: str | None) -> ClaimStatus | None:
    if value is not None and value not in CLAIM_STATUSES:
        allowed = ", ".join(CLAIM_STATUSES)
        raise ProblemError(400, "Bad request", f"status: must be one of {allowed}", [FieldError("status", f"must be one of {allowed}")])
    return value  # type: ignore[return-value]


def _claims(
    states: LiveStates, negotiation_id: str, as_of: dt.date, known_at: dt.datetime,
    status: ClaimStatus | None, after: int | None, limit: int, time_limit: TimeLimit,
) -> Page:
    state = states.state(negotiation_id, time_limit)
    versions = {r.event_id: r.originator_version for r in state.records}
    subjects = claims(view(state, as_of, known_at, time_limit), status).subjects
    first = ((world_key(s.values[0].occurred_on, versions[s.values[0].event_id]), s) for s in subjects)
    items, more = world_page(first, after, limit)
    return Page(items=items, next=more)


class ClaimController(Controller):
    path = "/v1/negotiations"
    tags = ["claims"]

    @get(
        "/{negotiation_id:str}/claims",
        operation_id="listNegotiationClaims",
        summary="Claims made by as_of, as known at known_at, by subject: single, disputed, confirmed or contradicted",
        description="One item per claim subject, in the world order of its first claim. `single`: one value "
        "(or one voice changing its mind); `disputed`: different values from different speakers or sources; "
        "`confirmed` / `contradicted`: a fact on record settled the subject (`settled_by`, `settled_on`, "
        "`settled_value`) and some claim matched it / none did; each claim carries its own `verdict`. "
        "Subjects settled so far: `truce.extension` (by a truce or deadline extension, or the truce's end) and "
        "`<party>.tariff_on_lapse_pct` (by the suspended rates that return when the truce runs out).",
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def list_claims(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        status: Annotated[str | None, QueryParameter(description="single, disputed, confirmed or contradicted.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        wanted = _status(status)
        after = decode_cursor(cursor)
        budget = time_limit(request)
        day, at = await moment(request, as_of, known_at, min_position)
        return await read(
            request, lambda r: _claims(r.states, negotiation_id, day, at, wanted, after, limit, budget), min_position
        )
