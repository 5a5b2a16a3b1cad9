"""Claims by subject: single, disputed, or confirmed / contradicted by the facts that settled them."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response
from service.http.routes import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.http.auth import require
from service.http.params import AsOf, Expand, KnownAt, Limit, MinPosition
from service.http.reads import NOT_MODIFIED, Reads
from service.http.requests import problems
from service.queries.answers import Ask
from service.queries.claims import ClaimsPage, claim_status, claims_page
from service.queries.params import decode_cursor, parse_date, parse_timestamp
from service.queries.reasons import expansions
from service.queries.state import moment


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
        "`<party>.tariff_on_lapse_pct` (by the suspended rates that return when the truce runs out). With "
        "`expand=because`, `because_events` maps every event id in a `because` of the page to the event's date, type, "
        "one line (`display`) and source.",
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def list_claims(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        status: Annotated[str | None, QueryParameter(description="single, disputed, confirmed or contradicted.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
        expand: Expand = None,
    ) -> Response[ClaimsPage]:
        wanted = claim_status(status)
        expanded = expansions(expand)
        after = decode_cursor(cursor)
        day, at = moment(reads.log, parse_date(as_of, "as_of"), parse_timestamp(known_at, "known_at"), None)  # min_position: checked where the answer is read
        ask = Ask("claims", negotiation_id, (day, wanted, after, limit, tuple(sorted(expanded))), (at,), as_of is not None and known_at is not None)
        return await reads.cached(ask, min_position, claims_page, negotiation_id, day, at, wanted, after, limit, reads.budget, expanded)
