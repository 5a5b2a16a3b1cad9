"""Query parameters routes share, declared once for the OpenAPI document (parsing is the query layer's)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from events.payloads import WORLD_DATE_RANGE

AsOf = Annotated[str | None, QueryParameter(description=f"World date YYYY-MM-DD {WORLD_DATE_RANGE}; default today (UTC).")]
KnownAt = Annotated[
    str | None, QueryParameter(description="RFC 3339 timestamp with an offset or Z: use what was recorded by then; default now.")
]
MinPosition = Annotated[
    int | None, QueryParameter(ge=0, le=2**62, description="A position a write answered: read at least up to it (422 past the log's head).")
]
LegalBasis = Annotated[str | None, QueryParameter(description="Keep tariffs whose legal basis contains this (case-blind).")]
WorldFrom = Annotated[str | None, QueryParameter(name="from", description=f"World date YYYY-MM-DD {WORLD_DATE_RANGE}.")]
WorldTo = Annotated[str | None, QueryParameter(name="to", description=f"World date YYYY-MM-DD {WORLD_DATE_RANGE}.")]
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Page size, at most 1,000.")]
Version = Annotated[int, QueryParameter(ge=0, le=2**62)]
ReadPosition = Annotated[
    int | None,
    QueryParameter(
        ge=0, le=2**62,
        description="Read your writes: answer from a store that includes this position (a write's `position`); "
        "the read replica when it has reached it, else the primary.",
    ),
]
ViewPosition = Annotated[
    int | None,
    QueryParameter(
        ge=0, le=2**62,
        description="Wait (PARLEY_MIN_POSITION_WAIT, 5 s) until the view includes this position, else 503; 422 past the log's head.",
    ),
]
Expand = Annotated[
    str | None,
    QueryParameter(
        description="`because`: add `because_events`, every event id in a `because` of the answer with its date, type, "
        "one line (`display.summary`) and source, so 'why?' is one call. A comma list; anything else is a 400.",
    ),
]
