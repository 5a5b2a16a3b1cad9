"""Claims by subject: single, disputed, or confirmed / contradicted by the facts that settled them."""

from __future__ import annotations

import datetime as dt

import msgspec

from projections.claims import CLAIM_STATUSES, ClaimStatus, SubjectView, claims
from projections.state import UNLIMITED, Budget, view
from service.queries.params import choice, world_key, world_page
from service.queries.reasons import NOT_EXPANDED, BecauseEvent, because_events
from service.queries.sources import SourceRegistry, because_ids
from service.queries.store import ReadStore


class ClaimsPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SubjectView]
    next: str | None
    # with ?expand=because: every event id in a `because` of the page (the claims, what settled them) -> its
    # date, type, one line and source; else null
    because_events: dict[str, BecauseEvent] | None = None


def claim_status(value: str | None) -> ClaimStatus | None:
    """A status filter, or InvalidQueryError naming the ones there are."""
    return None if value is None else choice(value, CLAIM_STATUSES, "status")  # type: ignore[return-value]


def claims_page(
    store: ReadStore, negotiation_id: str, as_of: dt.date, known_at: dt.datetime,
    status: ClaimStatus | None, after: int | None, limit: int, time_limit: Budget = UNLIMITED,
    expand: frozenset[str] = NOT_EXPANDED,
) -> ClaimsPage:
    """Claims made by as_of, as known at known_at, one item per subject in the world order of its first claim."""
    state = store.states.state(negotiation_id, time_limit)
    versions = {r.event_id: r.originator_version for r in state.records}
    subjects = claims(view(state, as_of, known_at, time_limit), status).subjects
    first = ((world_key(s.values[0].occurred_on, versions[s.values[0].event_id]), s) for s in subjects)
    items, more = world_page(first, after, limit)
    expanded = None
    if "because" in expand:
        expanded = because_events(state, because_ids(msgspec.to_builtins(items)), SourceRegistry(store.log))
    return ClaimsPage(items=items, next=more, because_events=expanded)
