"""Settings, read from the environment once into one typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

_TRUE = {"1", "true", "yes", "on", "y"}
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
NotNegative = Annotated[int, msgspec.Meta(ge=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = "var/parley.db"
    read_database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_read: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: AtLeastOne = 1
    shutdown_grace: AtLeastOne = 20
    header_read_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 10.0
    body_read_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    max_connections: Annotated[int, msgspec.Meta(ge=16)] = 4096
    # threads for the synchronous handlers (appends, keys, webhooks admin); an append waits in one for its commit
    threads: AtLeastOne = 40
    pool_size: AtLeastOne = 2
    pool_max_overflow: NotNegative = 10
    store_timeout: float = 5.0
    max_body_bytes: int = 1_048_576
    bootstrap_admin: bool = True
    run_projections: bool = True
    lease_poll: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    min_position_wait: float = 5.0
    signing_key: str | None = None
    signing_key_file: str = "var/parley-signing.key"
    run_webhooks: bool = True
    webhook_allow_hosts: str = ""
    webhook_warn_days: str = "7,1"
    webhook_timeout: float = 15.0
    webhook_lease: float = 60.0
    checkpoint_every: int = 1000
    checkpoint_hours: float = 24.0
    metrics_dir: str = ""
    ready_max_lag: int = 0
    rate_limit: Annotated[int, msgspec.Meta(ge=0)] = 6000
    rate_limit_window: Annotated[int, msgspec.Meta(ge=1)] = 60
    query_timeout: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    answer_cache_bytes: NotNegative = 64 * 1024 * 1024

    @property
    def allow_hosts(self) -> frozenset[str]:
        # comma- or space-separated; the webhook guard normalises each host ([::1], a trailing dot) when it checks
        return frozenset(h.lower() for h in re.split(r"[,\s]+", self.webhook_allow_hosts) if h)

    @property
    def warn_days(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.webhook_warn_days.split(",") if d.strip())

    @property
    def is_postgres(self) -> bool:
        return _is_postgres(self.database_url)

    def check_read_database(self) -> None:
        """A read replica needs a PostgreSQL primary and a PostgreSQL URL of its own."""
        if not self.read_database_url:
            return
        if not self.is_postgres:
            raise SettingsError(
                "PARLEY_READ_DATABASE_URL needs a PostgreSQL PARLEY_DATABASE_URL: an SQLite file has no read replicas; "
                "leave PARLEY_READ_DATABASE_URL empty"
            )
        if not _is_postgres(self.read_database_url):
            raise SettingsError("PARLEY_READ_DATABASE_URL must be a postgresql:// URL of a replica of PARLEY_DATABASE_URL")

    def to_env(self) -> dict[str, str]:
        """Every field as its PARLEY_<FIELD> variable: what `from_env` reads back as these same settings."""
        env = {}
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                env[env_name(field.name)] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Each field from `PARLEY_<FIELD>` when set and not empty; `overrides` (CLI options) win when not None."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            raw = env.get(env_name(field.name))
            if raw is not None and raw != "":
                values[field.name] = raw.strip().lower() in _TRUE if field.type is bool else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as error:
            raise SettingsError(f"invalid setting: {error} (from ${env_name(str(error).rsplit('$.', 1)[-1].rstrip('`'))})") from None


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def env_name(field: str) -> str:
    return f"PARLEY_{field.upper()}"


class SettingsError(ValueError):
    """A PARLEY_* variable that does not parse."""
