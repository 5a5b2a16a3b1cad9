"""Open the event log a Settings names: the SQLite file (its folder made) or PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

from events.application import Clock, ParleyLog, sqlite_file, store_env, utcnow
from service.settings import Settings


def create_private(path: Path) -> None:
    """Make `path` (and its folder) if missing, readable by this user only: SQLite gives -wal and -shm the same mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing file keeps its mode (and may be read-only: the store then says so)


def open_log(settings: Settings, clock: Clock = utcnow) -> ParleyLog:
    if (path := sqlite_file(settings.database_url)) is not None:
        create_private(Path(path).expanduser().resolve())
    env = store_env(
        settings.database_url, pool_size=settings.pool_size, max_overflow=settings.pool_max_overflow,
        store_timeout=settings.store_timeout,
    )
    return ParleyLog(env, clock=clock)
