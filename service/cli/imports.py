"""`parley import` and `parley demo load`: bring timelines in, validated first, each event once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import msgspec
import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from events import datasets
from events.errors import ParleyError
from service.cli import remote
from service.cli.importer import (
    ImportRefusedError,
    ImportReport,
    local_sink,
    remote_sink,
    run_import,
    seekable,
)

console = Console()
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} ev/s"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )


def _print_report(report: ImportReport, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(report).decode())
        return
    console.print(
        f"[bold]{report.negotiation_id}[/bold]: {report.lines} lines, [green]{report.stored} stored[/green], "
        f"{report.already_there} already there, {report.skipped_invalid} invalid skipped"
    )


def import_file(
    source: str | Path,
    negotiation_id: str,
    *,
    database: str | None = None,
    url: str | None = None,
    key: str | None = None,
    principal: str = "parley-import",
    skip_invalid: bool = False,
) -> ImportReport:
    from service.stores import open_log
    from service.settings import Settings

    with seekable(source) as handle, _progress() as bar:
        task = bar.add_task(f"importing {negotiation_id}", total=None, rate="-")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        if url:
            with remote.client(url, key) as http:
                return run_import(handle, negotiation_id, remote_sink(http, negotiation_id), skip_invalid=skip_invalid, progress=progress)
        log = open_log(Settings.from_env(database_url=database))
        try:
            return run_import(handle, negotiation_id, local_sink(log, negotiation_id, principal), skip_invalid=skip_invalid, progress=progress)
        finally:
            log.close()


def register(cli: typer.Typer) -> None:
    demo = typer.Typer(help="The shipped negotiations: US–China and US–EU, 2025-2026.", no_args_is_help=True)
    cli.add_typer(demo, name="demo")

    @cli.command("import")
    def import_command(
        file: Annotated[str, typer.Argument(help="JSON Lines of events; '-' reads standard input.")],
        negotiation: Annotated[str, typer.Option("--negotiation", help="The negotiation to import into.")],
        skip_invalid: Annotated[bool, typer.Option(help="Store the valid lines even if some are invalid.")] = False,
        url: Annotated[Optional[str], typer.Option(help="Import through a Parley server instead of the local store.")] = None,
        key: Annotated[Optional[str], typer.Option(help="Access key for --url (or $PARLEY_KEY).")] = None,
        recorded_by: Annotated[str, typer.Option("--as", help="recorded_by for a local import.")] = "parley-import",
        database: Annotated[Optional[str], typer.Option("--database", help="SQLite path or postgresql:// URL.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Import events: every line is validated before any is stored; re-importing stores nothing new."""
        if file != "-" and not Path(file).is_file():
            err.print(f"[red]error:[/red] no such file: {file}")
            raise typer.Exit(2)
        try:
            report = import_file(
                file, negotiation, database=database, url=url, key=key or os.environ.get("PARLEY_KEY"),
                principal=recorded_by, skip_invalid=skip_invalid,
            )
        except ImportRefusedError as refused:
            if as_json:
                print(msgspec.json.encode(refused.report).decode())
            for bad in refused.report.bad[:50]:
                err.print(f"line {bad.line}: {bad.field}: {bad.reason}")
            if len(refused.report.bad) > 50:
                err.print(f"... and {len(refused.report.bad) - 50} more")
            err.print(f"[red]error:[/red] {refused}; fix the lines or pass --skip-invalid")
            raise typer.Exit(1) from None
        except remote.RemoteError as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
        except (ParleyError, PersistenceError, OSError) as error:
            message = " ".join(f"{type(error).__name__}: {error}".split())
            err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
        _print_report(report, as_json)

    @demo.command("load")
    def demo_load(
        if_empty: Annotated[bool, typer.Option(help="Load only into a store that holds no events at all.")] = False,
        negotiation: Annotated[
            Optional[str], typer.Option("--negotiation", help=f"Load one shipped negotiation ({', '.join(datasets.names())}); default: all.")
        ] = None,
        database: Annotated[Optional[str], typer.Option("--database", help="SQLite path or postgresql:// URL.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the reports as a JSON list.")] = False,
    ) -> None:
        """Load the shipped negotiations (US–China and US–EU; idempotent: a second run stores nothing)."""
        from importlib import resources

        from service.stores import open_log
        from service.settings import Settings

        names = datasets.names()
        if negotiation is not None and negotiation not in names:
            err.print(f"[red]error:[/red] no shipped negotiation {negotiation!r}; the shipped ones are {', '.join(names)}")
            raise typer.Exit(2)
        if if_empty:
            log = open_log(Settings.from_env(database_url=database))
            try:
                empty = log.head() == 0
            finally:
                log.close()
            if not empty:
                if not as_json:
                    console.print("The store already holds events; the demo datasets were not loaded.")
                return
        reports = []
        for name in [negotiation] if negotiation else names:
            with resources.as_file(resources.files("events.datasets").joinpath(f"{name}.jsonl")) as path:
                reports.append(import_file(path, name, database=database, principal="parley-demo"))
        if as_json:
            print(msgspec.json.encode(reports).decode())
        else:
            for report in reports:
                _print_report(report, False)



