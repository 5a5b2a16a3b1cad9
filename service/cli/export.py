"""`parley export`: a negotiation as JSON Lines, TimelineJS JSON, an iCalendar feed of deadlines or a tariff CSV."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO, Optional

import typer
from rich.console import Console
from rich.markup import escape

from service.queries.exports import FORMATS

_err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


@contextlib.contextmanager
def _target(output: Path | None) -> Iterator[BinaryIO]:
    """stdout, or a file that appears whole: written beside it, then renamed over it."""
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = output.with_name(output.name + ".part")
    try:
        with partial.open("wb") as file:
            yield file
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def export(
    negotiation: Annotated[str, typer.Option("--negotiation", "-n", help="The negotiation's id.")],
    format: Annotated[  # noqa: A002 - the option's own name
        str, typer.Option("--format", "-f", help="jsonl, timelinejs, ics or csv.")
    ] = "jsonl",
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.", dir_okay=False)
    ] = None,
    history: Annotated[
        str,
        typer.Option(help="jsonl only: current (corrections applied, re-importable) or full (every event as recorded)."),
    ] = "current",
    known_at: Annotated[
        Optional[str], typer.Option("--known-at", help="RFC 3339 time: export what was recorded by then.")
    ] = None,
    database: Annotated[
        Optional[str],
        typer.Option(
            "--database", help="SQLite file path or postgresql:// URL (default: $PARLEY_DATABASE_URL or var/parley.db)."
        ),
    ] = None,
) -> None:
    """Export a negotiation from the local store (stdout by default)."""
    from eventsourcing.persistence import PersistenceError

    from events.errors import InvalidQueryError, NegotiationNotFoundError, StoreUnavailableError
    from service.queries.exports import HISTORIES
    from service.queries.exports import export as exported
    from service.queries.params import choice, parse_timestamp
    from service.queries.store import ReadStore
    from service.settings import Settings
    from service.stores import open_log

    try:
        fmt = choice(format, FORMATS, "--format")
        full = choice(history, HISTORIES, "--history") == "full"
        at = parse_timestamp(known_at, "--known-at")
    except InvalidQueryError as error:
        raise _fail(str(error), 2) from None
    try:
        log = open_log(Settings.from_env(database_url=database))
    except (PersistenceError, OSError) as error:
        raise _fail(f"cannot open the store: {error}", 1) from None
    try:
        made = exported(
            ReadStore.over(log), negotiation, fmt,  # type: ignore[arg-type]
            known_at=at or log.clock().astimezone(dt.UTC), history=full,
        )
        with _target(output) as target:
            for chunk in made.chunks:
                target.write(chunk)
    except (NegotiationNotFoundError, StoreUnavailableError) as error:
        raise _fail(str(error), 1) from None
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as error:
        raise _fail(f"cannot write {output or 'stdout'}: {error.strerror or error}", 1) from None
    finally:
        log.close()


def register(cli: typer.Typer) -> None:
    cli.command("export")(export)
