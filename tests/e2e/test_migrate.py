"""`parley migrate` creates every table once, first; processes that start together all open the store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from service.stores import open_log
from service.auth import KeyStore
from tests.support.process import PARLEY_TABLES
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# On SQLite the library names the events and tracking tables itself.
SQLITE_NAMES = {"parley_events": "stored_events", "parleyviews_tracking": "tracking", "parleywebhooks_tracking": "tracking"}


def tables_in(database_url: str) -> set[str]:
    if database_url.startswith("postgresql://"):
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()
    else:
        with sqlite3.connect(database_url) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def expected_tables(database_url: str) -> set[str]:
    if database_url.startswith("postgresql://"):
        return set(PARLEY_TABLES)
    # on SQLite the rate limit counters live in a file of their own beside the store, made on first use
    return {SQLITE_NAMES.get(table, table) for table in PARLEY_TABLES if table != "parley_rate_limits"}


def migrate(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    if database_url is not None:
        env["PARLEY_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate", *args],
        cwd=ROOT, env={**env, "COLUMNS": "400", "NO_COLOR": "1"}, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.slow
def test_migrate_creates_every_table_and_running_it_again_keeps_the_data(database_url: str) -> None:
    assert expected_tables(database_url) - tables_in(database_url) == expected_tables(database_url)

    first = migrate(database_url=database_url)
    assert first.returncode == 0, first.stderr
    assert expected_tables(database_url) <= tables_in(database_url)
    assert f"{len(expected_tables(database_url))} tables are ready" in first.stdout

    log = open_log(Settings(database_url=database_url, pool_size=1))
    try:
        KeyStore(log).create(name="kept", role="reader", created_by="test")
    finally:
        log.close()
    again = migrate("--database", database_url)
    assert again.returncode == 0, again.stderr
    assert expected_tables(database_url) <= tables_in(database_url)
    log = open_log(Settings(database_url=database_url, pool_size=1))
    try:
        assert [key.name for key in KeyStore(log).list(limit=10)] == ["kept"]
    finally:
        log.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_migrate_on_an_unreachable_database_fails_without_showing_the_password() -> None:
    failed = migrate(database_url="postgresql://parley:hunter2@127.0.0.1:1/parley")
    assert failed.returncode == 1
    assert "cannot create the tables on postgresql://parley:***@127.0.0.1:1/parley" in failed.stderr
    assert "hunter2" not in failed.stdout + failed.stderr


def test_processes_starting_together_all_open_the_store(database_url: str) -> None:
    """Replicas and workers start at once; without the schema lock PostgreSQL deadlocks replacing the triggers."""
    settings = Settings(database_url=database_url, pool_size=1)
    open_log(settings).close()
    starting = threading.Barrier(6)
    failures: list[BaseException] = []

    def start() -> None:
        starting.wait()
        try:
            open_log(settings).close()
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            failures.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
