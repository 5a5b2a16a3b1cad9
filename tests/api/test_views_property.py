"""Property: whatever the events and however the runner batches them, the persisted view equals a fold."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.payloads import (
    DeadlineExtended,
    DeadlineSet,
    MeasureChanged,
    NegotiationOpened,
)
from service.followers.views import ViewRunner, open_view_tables
from projections.state import fold
from service.followers.tables import VIEWS
from service.stores import open_log
from service.settings import Settings
from tests.conftest import reset_postgres

DAY0 = dt.date(2025, 1, 1)
days = st.integers(min_value=0, max_value=400).map(lambda n: DAY0 + dt.timedelta(days=n))

deadline_set = st.builds(
    lambda d, n, due: DeadlineSet(occurred_on=d, deadline_id=f"d{n}", title="D", due_on=d + dt.timedelta(days=due)),
    days, st.integers(0, 3), st.integers(0, 200),
)
deadline_extended = st.builds(
    lambda d, n, due: DeadlineExtended(occurred_on=d, deadline_id=f"d{n}", due_on=d + dt.timedelta(days=due)),
    days, st.integers(0, 3), st.integers(0, 200),
)
measure = st.builds(
    lambda d, n, rate, status, lag, tied: MeasureChanged(
        occurred_on=d, measure_id=f"m{n}", kind="tariff" if n % 2 else "export_control", status=status,
        imposed_by="US", applies_to="CN", rate_pct=float(rate) if n % 2 else None,
        effective_from=d + dt.timedelta(days=lag), until_deadline=f"d{tied}" if tied is not None else None,
    ),
    days, st.integers(0, 4), st.integers(0, 150), st.sampled_from(["in_force", "suspended", "removed", "announced"]),
    st.integers(0, 30), st.none() | st.integers(0, 3),
)
streams = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.lists(st.one_of(deadline_set, deadline_extended, measure), min_size=1, max_size=6)), min_size=1, max_size=8)
counter = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(appends=streams, batch_size=st.integers(1, 9), today=days)
def test_persisted_views_equal_a_fold_of_all_events(database_url, tmp_path, appends, batch_size, today):
    if database_url.startswith("postgresql"):
        reset_postgres()
        url = database_url
    else:
        url = str(tmp_path / f"views-{next(counter)}.db")
    log = open_log(Settings(database_url=url))
    tables = open_view_tables(log)
    try:
        opened = set()
        for nid, events in appends:
            if nid not in opened:
                log.record(nid, [NegotiationOpened(occurred_on=DAY0, title=nid, parties=("US", "CN"))], principal="p", request_id="r")
                opened.add(nid)
            log.record(nid, events, principal="p", request_id="r")
        for spec in VIEWS.values():
            ViewRunner(log, tables, spec, batch_size=batch_size, today=lambda: today).catch_up()
            expected = []
            for nid in sorted(opened):
                records = [a.record for a in log.stream(nid, after_version=0, limit=1000)[0]]
                expected += spec.rows(fold(records), today)
            key = lambda row: tuple(str(row[k]) for k in spec.key)  # noqa: E731
            assert sorted(tables.rows(spec), key=key) == sorted(expected, key=key)
            assert tables.position(spec) == log.head()
    finally:
        tables.datastore.close()
        log.close()
