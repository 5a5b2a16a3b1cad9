"""Start and stop `parley serve` as a child process (end-to-end tests, benchmarks, operators' scripts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    database_url: str,
    log_path: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    wrapper: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """Serve on 127.0.0.1 and return once /ready answers 200; `wrapper` runs it under another command (e.g. setpriv)."""
    port = port or free_port()
    environment = {
        **os.environ,
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_LOG_FORMAT": "json",
        "PARLEY_BOOTSTRAP_ADMIN": "0",
        **(env or {}),
    }
    with log_path.open("ab") as out:
        process = subprocess.Popen([*wrapper, sys.executable, "-m", "service", "serve"], env=environment, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready: {log_path.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def create_key(database_url: str, name: str, role: str) -> str:
    """Create a key with the CLI and return its secret."""
    out = subprocess.run(
        [sys.executable, "-m", "service", "keys", "create", "--name", name, "--role", role, "--database", database_url],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


# Every table Parley creates in its database (events, side tables, views, webhooks, trackings).
PARLEY_TABLES = (
    "parley_events",
    "parley_event_index",
    "parley_idempotency",
    "parley_keys",
    "parley_sources",
    "parley_view_deadlines",
    "parley_view_measures",
    "parleyviews_tracking",
    "parley_webhooks",
    "parley_outbox",
    "parley_delivery_attempts",
    "parleywebhooks_tracking",
    "parley_rate_limits",
    "parley_parked",
)


def drop_postgres_tables(url: str) -> None:
    """Drop every Parley table from a PostgreSQL database: for tests and benchmarks on a scratch database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(PARLEY_TABLES)} CASCADE")
