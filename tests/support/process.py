"""Start and stop `parley serve`, `parley project` and `parley deliver` as child processes (end-to-end tests, benchmarks, scripts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import msgspec


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
    workers: int | None = None,
    command: Sequence[str] | None = None,
    wrapper: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """Serve on 127.0.0.1 and return once /ready answers 200.

    `workers` sets PARLEY_WORKERS; `command` serves with another command line (default `parley serve`),
    which gets the same PARLEY_* environment; `wrapper` runs it under another command (e.g. setpriv).
    The server leads its own process group, so that `stop_server` reaches its worker processes too.
    """
    port = port or free_port()
    environment = {
        **os.environ,
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_LOG_FORMAT": "json",
        "PARLEY_BOOTSTRAP_ADMIN": "0",
        **({"PARLEY_WORKERS": str(workers)} if workers is not None else {}),
        **(env or {}),
    }
    argv = list(command) if command is not None else [sys.executable, "-m", "service", "serve"]
    with log_path.open("ab") as out:
        process = subprocess.Popen([*wrapper, *argv], env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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
    kill_server(process)
    raise RuntimeError(f"server did not become ready: {log_path.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen[bytes], timeout: float = 10) -> int:
    """SIGTERM, as an orchestrator stops it; after `timeout` seconds SIGKILL its whole process group. Returns the exit code."""
    process.terminate()
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_server(process)
        return process.wait(10)
    kill_server(process)  # workers orphaned by an earlier SIGKILL of the server itself
    return code


def kill_server(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and every worker process it started (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


def start_worker(
    command: list[str], database_url: str, log_path: Path, followers: int, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.Popen[bytes]:
    """Start `parley <command>` (JSON logs to `log_path`); return once each of its `followers` holds or waits for its lease."""
    environment = {**os.environ, "PARLEY_DATABASE_URL": database_url, "PARLEY_LOG_FORMAT": "json", **(env or {})}
    start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "service", *command], env=environment, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"parley {' '.join(command)} exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        if len(log_lines(log_path, "lease_acquired", "lease_waiting", offset=start)) >= followers:
            return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"parley {' '.join(command)} did not start following: {log_path.read_text()[-2000:]}")


def start_projector(
    database_url: str, log_path: Path, views: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    from service.followers.tables import VIEWS

    command = ["project", *(arg for view in views for arg in ("--view", view))]
    return start_worker(command, database_url, log_path, len(views or VIEWS), env)


def start_deliverer(database_url: str, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return start_worker(["deliver"], database_url, log_path, 1, env)


def log_lines(log_path: Path, *events: str, offset: int = 0) -> list[dict[str, object]]:
    """The structlog JSON lines a child process wrote (from byte `offset`), optionally only those of some events."""
    found = []
    with log_path.open("rb") as file:
        file.seek(offset)
        lines = file.read().splitlines()
    for line in lines:
        if line.startswith(b"{"):
            try:
                entry = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue  # a line cut off by SIGKILL
            if not events or entry.get("event") in events:
                found.append(entry)
    return found


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
    "parley_view_deadlines_v2",
    "parley_view_measures_v2",
    "parleyviews_tracking",
    "parley_webhooks",
    "parley_outbox",
    "parley_delivery_attempts",
    "parleywebhooks_tracking",
    "parley_rate_limits",
    "parley_parked",
)


# Tables of earlier releases' views, rebuilt under new names since (a database may still hold them).
RETIRED_TABLES = ("parley_view_deadlines", "parley_view_measures")


def drop_postgres_tables(url: str) -> None:
    """Drop every Parley table from a PostgreSQL database: for tests and benchmarks on a scratch database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join((*PARLEY_TABLES, *RETIRED_TABLES))} CASCADE")
