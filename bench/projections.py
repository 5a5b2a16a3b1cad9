"""Projection rebuild rate, as a ratio of the rate at which the same run reads the raw event log.

Seeds negotiations with tariff and deadline events on SQLite and PostgreSQL, then times (1) reading
the whole log in pages of 500 notifications and (2) rebuilding each persisted view from position 0.
Run: `.venv/bin/python -m bench.projections`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from events.payloads import DeadlineSet, MeasureChanged, NegotiationOpened
from service.followers.views import ViewRunner, open_view_tables
from service.followers.tables import VIEWS
from service.stores import open_log
from tests.support.process import drop_postgres_tables
from service.settings import Settings

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def seed(url: str, negotiations: int, events_each: int) -> int:
    log = open_log(Settings(database_url=url))
    try:
        for n in range(negotiations):
            nid = f"bench-{n}"
            log.record(nid, [NegotiationOpened(occurred_on=dt.date(2020, 1, 1), title=nid, parties=("US", "CN"))], principal="bench", request_id="bench")
            for start in range(0, events_each, 500):
                batch = []
                for i in range(start, start + 500):
                    day = dt.date(2020, 1, 1) + dt.timedelta(days=i % 2000)
                    if i % 3 == 0:
                        batch.append(DeadlineSet(occurred_on=day, deadline_id=f"d{i % 20}", title="D", due_on=day + dt.timedelta(days=90)))
                    else:
                        batch.append(MeasureChanged(occurred_on=day, measure_id=f"m{i % 30}", kind="tariff", status="in_force",
                                                    imposed_by="US" if i % 2 else "CN", applies_to="CN" if i % 2 else "US",
                                                    legal_basis="IEEPA", rate_pct=float(i % 60), effective_from=day))
                log.record(nid, batch, principal="bench", request_id="bench")
        return log.head()
    finally:
        log.close()


def measure(name: str, url: str, negotiations: int, events_each: int) -> list[tuple[str, float, float]]:
    head = seed(url, negotiations, events_each)
    log = open_log(Settings(database_url=url))
    tables = open_view_tables(log)
    try:
        started = time.perf_counter()
        position, read = 0, 0
        while batch := log.recorder.select_notifications(start=position, limit=500, inclusive_of_start=False):
            position, read = batch[-1].id, read + len(batch)
        raw_rate = read / (time.perf_counter() - started)
        rows = []
        for view_name, spec in VIEWS.items():
            runner = ViewRunner(log, tables, spec)
            started = time.perf_counter()
            count = runner.rebuild()
            rows.append((f"{name}: rebuild {view_name} ({head} events)", count / (time.perf_counter() - started), raw_rate))
        return rows
    finally:
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--negotiations", type=int, default=10)
    parser.add_argument("--events", type=int, default=2000, help="events per negotiation")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += measure("SQLite", str(Path(tmp) / "bench.db"), args.negotiations, args.events)
    if not args.skip_postgres:
        drop_postgres_tables(POSTGRES_URL)
        rows += measure("PostgreSQL", POSTGRES_URL, args.negotiations, args.events)
    print(f"{'projection':<52} {'events/s':>10} {'raw read/s':>11} {'ratio':>7}")
    for label, rate, raw in rows:
        print(f"{label:<52} {rate:>10.0f} {raw:>11.0f} {rate / raw:>7.3f}")


if __name__ == "__main__":
    main()
