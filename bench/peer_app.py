"""The peer: what a user would build instead of Parley, a litestar + psycopg pool app over a table of measure periods.

`GET /tariffs?as_of=D` answers "tariffs in force on D" from `peer_measure_periods` (one row per measure
and period of constant rate, status and legal basis; `period` a daterange with a GiST index) with one
SELECT: `{as_of, directions: {"<imposed_by>-><applies_to>": {total, measures: [...]}}}`, where `total` sums the
rows that count (`counted`, as Parley's `total_additional_pct` does). No key, no history, no `known_at`,
no sources: only the answer.

`load_peer_table` builds the table from Parley's own answers, so that both answer the same question from
the same dataset: it asks Parley's query layer (`part_at(..., "tariffs", day, now)`, what
`GET /state/tariffs?as_of=day` answers) for every day from the negotiation's first event to the end of its
record, and collapses the days on which a measure's (rate, legal basis, status, counted) stay the same into
one period `[first day, day after the last)`.

Served like the trivial route of bench.load (granian, one worker):

    PEER_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m granian --interface asgi \\
        --factory --loop uvloop --http 1 --no-ws bench.peer_app:create_peer_app
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Response, get
from litestar.di import Provide
from litestar.exceptions import HTTPException
from psycopg_pool import AsyncConnectionPool

POOL_SIZE = 8
DAY = dt.timedelta(days=1)

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_measure_periods (
    negotiation_id text NOT NULL,
    measure_id text NOT NULL,
    imposed_by text NOT NULL,
    applies_to text NOT NULL,
    rate_pct numeric,
    legal_basis text,
    status text NOT NULL,
    counted boolean NOT NULL,
    period daterange NOT NULL
);
CREATE INDEX IF NOT EXISTS peer_measure_periods_period ON peer_measure_periods USING gist (period);
"""

QUERY = """
SELECT imposed_by, applies_to, measure_id, rate_pct::float8, legal_basis, status, counted
FROM peer_measure_periods
WHERE negotiation_id = %s AND period @> %s::date
ORDER BY imposed_by, applies_to, measure_id
"""

NEGOTIATION = "us-china-trade-2025"
_encode = msgspec.json.Encoder().encode


@get("/tariffs")
async def tariffs(pool: AsyncConnectionPool, as_of: str, negotiation: str = NEGOTIATION) -> Response[bytes]:
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise HTTPException(status_code=400, detail="as_of must be a date YYYY-MM-DD") from None
    async with pool.connection() as conn:
        rows = await (await conn.execute(QUERY, (negotiation, day))).fetchall()
    directions: dict[str, dict[str, Any]] = {}
    for imposed_by, applies_to, measure_id, rate, basis, status, counted in rows:
        direction = directions.setdefault(f"{imposed_by}->{applies_to}", {"total": 0.0, "measures": []})
        if counted and rate is not None:
            direction["total"] += rate
        direction["measures"].append(
            {"measure_id": measure_id, "rate_pct": rate, "legal_basis": basis, "status": status, "counted": counted}
        )
    return Response(_encode({"as_of": day, "directions": directions}), media_type="application/json")


@get("/ready")
async def ready(pool: AsyncConnectionPool) -> dict[str, bool]:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
    return {"ok": True}


def create_peer_app() -> Litestar:
    pool = AsyncConnectionPool(os.environ["PEER_DATABASE_URL"], min_size=POOL_SIZE, max_size=POOL_SIZE, open=False)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    async def provide_pool() -> AsyncConnectionPool:
        return pool

    return Litestar(
        route_handlers=[tariffs, ready],
        lifespan=[lifespan],
        dependencies={"pool": Provide(provide_pool, use_cache=True)},
        debug=False,
        logging_config=None,
    )


# --- building the table from Parley's answers -------------------------------------------------------


def _rows_on(store: Any, negotiation_id: str, day: dt.date, now: dt.datetime) -> tuple[dict[tuple[str, str, str], tuple], Any]:
    from service.queries.state import part_at

    answer = part_at(store, negotiation_id, "tariffs", day, now, None)
    rows = {}
    for direction in msgspec.to_builtins(answer["tariffs"])["directions"]:
        for measure in direction["measures"]:
            key = (direction["imposed_by"], direction["applies_to"], measure["measure_id"])
            rows[key] = (measure["rate_pct"], measure["legal_basis"], measure["status"], measure["counted"])
    return rows, answer["coverage"]


def periods_from_parley(parley_database: str, negotiation_id: str) -> list[tuple[Any, ...]]:
    """Every (measure, period) of constant answer, asking Parley's query layer day by day over the record."""
    from service.queries.store import ReadStore
    from service.settings import Settings
    from service.stores import open_log

    log = open_log(Settings.from_env(database_url=parley_database))
    try:
        store = ReadStore.over(log)
        negotiation = log.negotiation(negotiation_id)
        now = log.clock().astimezone(dt.UTC)
        first = dt.date.fromisoformat(str(msgspec.to_builtins(negotiation)["first_occurred_on"]))
        _, coverage = _rows_on(store, negotiation_id, first, now)
        last = dt.date.fromisoformat(str(msgspec.to_builtins(coverage)["record_through"]))
        periods: list[tuple[Any, ...]] = []
        open_: dict[tuple[str, str, str], tuple[tuple, dt.date]] = {}  # key -> (values, since)
        day = first
        while day <= last + DAY:
            rows = _rows_on(store, negotiation_id, day, now)[0] if day <= last else {}
            for key, (values, since) in list(open_.items()):
                if rows.get(key) != values:
                    periods.append((negotiation_id, *key, *values, since, day))
                    del open_[key]
            for key, values in rows.items():
                if key not in open_:
                    open_[key] = (values, day)
            day += DAY
        return periods
    finally:
        log.close()


def load_peer_table(database_url: str, negotiation_id: str, parley_database: str) -> int:
    """(Re)build `peer_measure_periods` for one negotiation in the peer's PostgreSQL from Parley's store; returns the rows."""
    import psycopg
    from psycopg.types.range import Range

    periods = periods_from_parley(parley_database, negotiation_id)
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)
        conn.execute("DELETE FROM peer_measure_periods WHERE negotiation_id = %s", (negotiation_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO peer_measure_periods (negotiation_id, imposed_by, applies_to, measure_id, rate_pct, legal_basis,"
                " status, counted, period) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(*row[:8], Range(row[8], row[9], "[)")) for row in periods],
            )
        conn.execute("ANALYZE peer_measure_periods")
    return len(periods)
