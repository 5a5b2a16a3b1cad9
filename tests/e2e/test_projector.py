"""A separate projector process: killed mid-catch-up and restarted, its views equal a clean fold."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from events.payloads import DeadlineSet, MeasureChanged, NegotiationOpened
from service.followers.views import open_view_tables
from projections.state import fold
from service.followers.tables import VIEWS
from service.stores import open_log
from service.settings import Settings

pytestmark = pytest.mark.slow


def _seed(database_url: str, negotiations: int, events_each: int) -> int:
    log = open_log(Settings(database_url=database_url))
    try:
        for n in range(negotiations):
            nid = f"n{n}"
            log.record(nid, [NegotiationOpened(occurred_on=dt.date(2025, 1, 1), title=nid, parties=("US", "CN"))], principal="seed", request_id="seed")
            for start in range(0, events_each, 100):
                batch = []
                for i in range(start, start + 100):
                    day = dt.date(2025, 1, 1) + dt.timedelta(days=i % 300)
                    if i % 2:
                        batch.append(DeadlineSet(occurred_on=day, deadline_id=f"d{i % 40}", title="D", due_on=day + dt.timedelta(days=90)))
                    else:
                        batch.append(MeasureChanged(occurred_on=day, measure_id=f"m{i % 25}", kind="tariff", status="in_force",
                                                    imposed_by="US", applies_to="CN", rate_pct=float(i % 50), effective_from=day))
                log.record(nid, batch, principal="seed", request_id="seed")
        return log.head()
    finally:
        log.close()


def _project(database_url: str, log_path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PARLEY_DATABASE_URL": database_url, "PARLEY_LOG_FORMAT": "json"}
    with open(log_path, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "service", "project"], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_a_projector_killed_mid_catch_up_resumes_and_equals_a_clean_fold(database_url, tmp_path):
    head = _seed(database_url, negotiations=6, events_each=1000)
    log = open_log(Settings(database_url=database_url))
    tables = open_view_tables(log)
    try:
        first = _project(database_url, tmp_path / "p1.log")
        deadline = time.monotonic() + 60
        while tables.position(VIEWS["measures"]) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        stopped_at = {name: tables.position(spec) for name, spec in VIEWS.items()}
        assert 0 < stopped_at["measures"] < head, "the kill should land mid-way; make the seed larger"
        second = _project(database_url, tmp_path / "p2.log")
        try:
            deadline = time.monotonic() + 120
            while any(tables.position(spec) < head for spec in VIEWS.values()) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
        today = dt.datetime.now(dt.UTC).date()
        for spec in VIEWS.values():
            assert tables.position(spec) == head
            expected = []
            for n in range(6):
                records = [a.record for a in log.stream(f"n{n}", after_version=0, limit=10_000)[0]]
                expected += spec.rows(fold(records), today)
            key = lambda row: tuple(str(row[k]) for k in spec.key)  # noqa: E731
            assert sorted(tables.rows(spec), key=key) == sorted(expected, key=key)
    finally:
        tables.datastore.close()
        log.close()
