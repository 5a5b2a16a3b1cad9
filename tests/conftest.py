"""Fixtures shared by every test: a store per backend, a served process, keys for each role."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from tests.support.process import create_key, drop_postgres_tables, start_server, stop_server
from service.settings import Settings
from tests.throwaway_postgres import throwaway_postgres  # noqa: F401 - a fixture for every test


def _database_per_worker(url: str) -> str:
    """Under pytest-xdist each worker gets a database of its own (created on first use), as tests drop every table."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_{worker}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        pass  # the fixtures report an unreachable server
    return urlunsplit(parts._replace(path=f"/{name}"))


POSTGRES_URL = _database_per_worker(os.environ.get("PARLEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
REQUIRE_POSTGRES = os.environ.get("PARLEY_REQUIRE_POSTGRES") == "1"


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error)
    return None


def reset_postgres() -> None:
    drop_postgres_tables(POSTGRES_URL)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the embedded SQLite file and on a real PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "parley.db")
    return emptied_postgres()


def emptied_postgres() -> str:
    """The PostgreSQL test database without Parley's tables; skipped when unreachable, failed when CI requires it."""
    problem = _postgres_reachable()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required and unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    reset_postgres()
    return POSTGRES_URL


class SettableClock:
    """A clock tests move by hand, for distinct recording times."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@dataclass
class Served:
    """A real `parley serve` process on loopback."""

    base_url: str
    database_url: str
    admin_key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    admin = create_key(database_url, "admin", "admin")
    log_path = tmp_path / "server.log"
    process, base_url = start_server(database_url, log_path, env={"PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")})
    yield Served(base_url, database_url, admin, process, log_path)
    stop_server(process)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)
