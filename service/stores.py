"""Open the event log a Settings names: the SQLite file (its folder made) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from events.application import Clock, ParleyLog, store_env, utcnow
from service.settings import Settings


def open_log(settings: Settings, clock: Clock = utcnow) -> ParleyLog:
    if not settings.is_postgres:
        Path(settings.database_url).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    env = store_env(
        settings.database_url, pool_size=settings.pool_size, max_overflow=settings.pool_max_overflow,
        store_timeout=settings.store_timeout,
    )
    return ParleyLog(env, clock=clock)
