"""`parley migrate`: the operations a deployment runs before it serves (create every table, once, first)."""

from __future__ import annotations

from typing import Annotated, Optional
from urllib.parse import urlsplit, urlunsplit

import typer
from eventsourcing.persistence import OperationalError
from rich.console import Console
from rich.markup import escape

from service.settings import Settings, SettingsError

_out = Console()
_err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def shown_url(database_url: str) -> str:
    """The store's address without its password, for output and logs."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def create_tables(settings: Settings) -> list[str]:
    """Create the event store with its side tables, the persisted views and the webhook tables; return the tables there."""
    from service.followers.views import open_view_tables
    from service.stores import open_log
    from service.http.ratelimit import create_postgres_counters
    from service.webhooks.store import open_webhook_tables

    log = open_log(settings)
    try:
        for tables in (open_view_tables(log), open_webhook_tables(log)):
            tables.datastore.close()  # type: ignore[attr-defined]
        if settings.is_postgres:
            create_postgres_counters(log)
        if settings.is_postgres:  # a database Parley may share: its tables are the parley ones
            query = "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE ?"
            pattern = "parley%"
        else:  # a file of its own, where the library names the events and tracking tables
            query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE ?"
            pattern = "sqlite%"
        return sorted(row["name"] for row in log.store.run(query, (pattern,)))
    finally:
        log.close()


def migrate(
    database: Annotated[
        Optional[str],
        typer.Option("--database", help="SQLite file path or postgresql:// URL (default: $PARLEY_DATABASE_URL or var/parley.db)."),
    ] = None,
) -> None:
    """Create every table Parley needs on the store; safe to run again. Run it before the first `serve` of a release."""
    try:
        settings = Settings.from_env(database_url=database, pool_size=1)
    except SettingsError as error:
        raise _fail(str(error), 2) from None
    where = shown_url(settings.database_url)
    try:
        tables = create_tables(settings)
    except (OperationalError, OSError) as error:
        raise _fail(f"cannot create the tables on {where}: {error}", 1) from None
    _out.print(f"Parley's {len(tables)} tables are ready on {escape(where)}: {', '.join(tables)}", soft_wrap=True, highlight=False)


def register(cli: typer.Typer) -> None:
    cli.command("migrate")(migrate)
