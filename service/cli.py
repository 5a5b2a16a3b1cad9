"""The `parley` command: serve the API and manage access keys."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from service.settings import Settings

cli = typer.Typer(help="Parley: event-sourced negotiation timelines.", no_args_is_help=True, add_completion=False)
keys_cli = typer.Typer(help="Create, list and revoke access keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
audit_cli = typer.Typer(help="Tamper evidence: verify the hash chain, take signed checkpoints.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
projections_cli = typer.Typer(help="Persisted views: status and rebuilds.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")
console = Console()
err = Console(stderr=True)

DatabaseOption = Annotated[
    Optional[str],
    typer.Option("--database", help="SQLite file path or postgresql:// URL (default: $PARLEY_DATABASE_URL or var/parley.db)."),
]


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _settings(database: str | None = None, **overrides: object) -> Settings:
    from service.settings import SettingsError

    try:
        return Settings.from_env(database_url=database, **overrides)
    except SettingsError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default 8000).")] = None,
    database: DatabaseOption = None,
    workers: Annotated[Optional[int], typer.Option(help="Server worker processes (default $PARLEY_WORKERS or 1).")] = None,
) -> None:
    """Serve the API: one process on the SQLite file by default, `--workers N` processes for more."""
    from eventsourcing.persistence import PersistenceError

    from events.errors import ParleyError
    from service.logs import configure_logging
    from service.serving import prepare
    from service.serving import serve as run_server

    settings = _settings(database, host=host, port=port, workers=workers)
    configure_logging(settings.log_format, settings.log_level)
    try:
        secret = prepare(settings)
    except (ParleyError, PersistenceError, OSError) as error:
        err.print(f"[red]error:[/red] cannot prepare the store: {type(error).__name__}: {error}")
        raise typer.Exit(1) from None
    base = f"http://{settings.host}:{settings.port}"
    if secret:
        console.rule("[bold]Parley: first start")
        console.print("An admin key was created. It is shown [bold]once[/bold]; keep it somewhere safe:\n")
        console.print(f"    [bold green]{secret}[/bold green]\n")
        console.print("Try it:\n")
        console.print(f"    curl -s -H 'Authorization: Bearer {secret}' {base}/v1/negotiations\n", soft_wrap=True)
        console.rule()
    store = "PostgreSQL" if settings.is_postgres else f"SQLite file {os.path.abspath(settings.database_url)}"
    processes = f" with {settings.workers} workers" if settings.workers > 1 else ""
    console.print(f"Serving Parley on [bold]{base}[/bold]{processes} (API docs: {base}/schema) on {store}")
    run_server(settings)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who the key belongs to; becomes recorded_by on every event.")],
    role: Annotated[str, typer.Option(help="reader, reporter or admin.")] = "reader",
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print its secret (shown once)."""
    import msgspec

    from events.errors import KeyNameTakenError, StoreUnavailableError
    from service.api.keys import KeyCreate
    from service.app import open_log
    from service.auth import KeyStore

    try:
        body = msgspec.convert({"name": name, "role": role}, KeyCreate)
    except msgspec.ValidationError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    log = open_log(_settings(database))
    try:
        created = KeyStore(log).create(name=body.name, role=body.role, created_by=f"cli:{os.environ.get('USER', 'unknown')}")
    except (KeyNameTakenError, StoreUnavailableError) as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        log.close()
    if as_json:
        print(msgspec.json.encode(created).decode())
        return
    console.print(f"Created key [bold]{created.id}[/bold] for [bold]{created.name}[/bold] ({created.role}). Its secret, shown once:")
    print(created.key)


@keys_cli.command("list")
def keys_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List keys (never their secrets)."""
    import msgspec

    from service.app import open_log
    from service.auth import KeyStore

    log = open_log(_settings(database))
    try:
        found = KeyStore(log).list(limit=1000)
    finally:
        log.close()
    if as_json:
        print(msgspec.json.encode(found).decode())
        return
    table = Table("id", "name", "role", "created", "revoked")
    for key in found:
        table.add_row(key.id, key.name, key.role, key.created_at, key.revoked_at or "")
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or name.")], database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Revoke a key: requests with it answer 401 from now on."""
    import msgspec

    from events.errors import KeyNotFoundError
    from service.app import open_log
    from service.auth import KeyStore

    log = open_log(_settings(database))
    try:
        record = KeyStore(log).revoke(key, revoked_by=f"cli:{os.environ.get('USER', 'unknown')}")
    except KeyNotFoundError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        log.close()
    if as_json:
        print(msgspec.json.encode(record).decode())
        return
    console.print(f"Revoked [bold]{record.id}[/bold] ({record.name}) at {record.revoked_at}")


@audit_cli.command("verify")
def audit_verify(
    checkpoint: Annotated[Optional[str], typer.Option(help="A checkpoint JSON file someone kept: prove the log extends it.")] = None,
    database: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute the hash chain; exit 1 and name the first position where it breaks."""
    import msgspec

    from events.audit import Checkpoint
    from service.app import open_log
    from service.signing import Signer, signature_valid

    settings = _settings(database)
    kept = None
    if checkpoint is not None:
        try:
            kept = msgspec.json.decode(open(checkpoint, "rb").read(), type=Checkpoint)
        except (OSError, msgspec.DecodeError) as error:
            err.print(f"[red]error:[/red] cannot read checkpoint {checkpoint}: {error}")
            raise typer.Exit(2) from None
    log = open_log(settings)
    try:
        report, at_checkpoint = log.verify(stop_at=kept.position if kept else None)
    finally:
        log.close()
    problems: list[str] = []
    if not report.ok:
        problems.append(f"chain breaks at position {report.broken_at} (previous intact position {report.previous_position}): {report.reason}")
    if kept is not None:
        signer = Signer.load(settings.signing_key, settings.signing_key_file)
        if not signature_valid(kept, signer.public_key_b64):
            problems.append("the checkpoint's signature does not verify with this server's key")
        elif kept.position > 0 and at_checkpoint != kept.hash:
            problems.append(f"the log at position {kept.position} does not match the checkpoint: history before it was rewritten")
    if as_json:
        print(msgspec.json.encode({"ok": not problems, "report": report, "problems": problems}).decode())
    elif problems:
        for problem in problems:
            err.print(f"[red]FAILED:[/red] {problem}")
    else:
        extends = f"; it extends the checkpoint at position {kept.position}" if kept else ""
        console.print(f"[green]ok[/green]: {report.checked} events, head {report.head_position} {report.head_hash}{extends}")
    if problems:
        raise typer.Exit(1)


@audit_cli.command("checkpoint")
def audit_checkpoint(database: DatabaseOption = None) -> None:
    """Print a signed checkpoint of the log's head (JSON), for someone outside to keep."""
    import msgspec

    from service.app import open_log
    from service.signing import Signer

    settings = _settings(database)
    log = open_log(settings)
    try:
        head = log.head()
        appended = log.feed(after=head - 1, limit=1)[0][0] if head else None
    finally:
        log.close()
    signer = Signer.load(settings.signing_key, settings.signing_key_file)
    if appended is None:
        signed = signer.checkpoint(0, "0" * 64, "")
    else:
        signed = signer.checkpoint(appended.position, appended.hash, appended.record.recorded_at.isoformat().replace("+00:00", "Z"))
    print(msgspec.json.encode(signed).decode())


def _views(database: str | None):  # type: ignore[no-untyped-def]
    from projections.runner import open_runners, open_view_tables
    from service.app import open_log

    log = open_log(_settings(database))
    tables = open_view_tables(log)
    return log, tables, open_runners(log, tables)


@projections_cli.command("status")
def projections_status(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Each view's position in the global log and how far behind the head it is."""
    import json

    log, tables, runners = _views(database)
    try:
        head = log.head()
        rows = [
            {"view": name, "table": runner.spec.table, "position": tables.position(runner.spec), "head": head}
            for name, runner in runners.items()
        ]
        if as_json:
            print(json.dumps([{**row, "lag": head - row["position"]} for row in rows]))
            return
        table = Table("view", "table", "position", "head", "lag")
        for row in rows:
            table.add_row(row["view"], row["table"], str(row["position"]), str(head), str(head - row["position"]))
        console.print(table)
    finally:
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()


@projections_cli.command("rebuild")
def projections_rebuild(
    name: Annotated[Optional[str], typer.Argument(help="The view to rebuild (default: all).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Rebuild views from position 0, with a progress bar. Stop other runners of the view first."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from projections.views import VIEWS

    if name is not None and name not in VIEWS:
        err.print(f"[red]error:[/red] no view {name!r}; views: {', '.join(VIEWS)}")
        raise typer.Exit(2)
    log, tables, runners = _views(database)
    try:
        head = log.head()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
            for view_name, runner in runners.items():
                if name is not None and view_name != name:
                    continue
                task = bar.add_task(f"rebuilding {view_name}", total=head or 1)
                count = runner.rebuild(lambda done, total, task=task: bar.update(task, completed=done, total=max(total, 1)))
                bar.update(task, completed=max(count, 1), total=max(count, 1))
        console.print(f"Rebuilt up to position {head}.")
    finally:
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()


@cli.command()
def project(database: DatabaseOption = None) -> None:
    """Run the projection runners in the foreground (for a separate projector process)."""
    import signal
    import threading

    from service.logs import configure_logging

    settings = _settings(database)
    configure_logging(settings.log_format, settings.log_level)
    log, tables, runners = _views(database)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for runner in runners.values():
        runner.start()
    console.print(f"Following the log for views: {', '.join(runners)}")
    stop.wait()
    for runner in runners.values():
        runner.stop()
    tables.datastore.close()  # type: ignore[attr-defined]
    log.close()


@cli.command()
def deliver(database: DatabaseOption = None) -> None:
    """Run the webhook relay and a sender in the foreground (for separate delivery processes)."""
    import signal
    import threading

    from events.application import utcnow
    from service.app import open_log
    from service.logs import configure_logging
    from service.signing import Signer
    from service.webhooks import checkpoint_of, open_webhooks

    settings = _settings(database)
    configure_logging(settings.log_format, settings.log_level)
    log = open_log(settings)
    signer = Signer.load(settings.signing_key, settings.signing_key_file)
    hooks = open_webhooks(
        log, secret_key=signer.derive_key("parley webhook secrets"), clock=utcnow, allow_hosts=settings.allow_hosts,
        warn_days=settings.warn_days, timeout=settings.webhook_timeout, lease_seconds=settings.webhook_lease,
            checkpoint=checkpoint_of(log, signer), checkpoint_every=settings.checkpoint_every,
            checkpoint_hours=settings.checkpoint_hours,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    hooks.start()
    console.print("Relaying the log to webhook subscribers; Ctrl-C to stop")
    stop.wait()
    hooks.stop()
    log.close()


def main() -> None:
    from service.cli_export import register as register_export
    from service.cli_import import register as register_import
    from service.cli_read import register as register_read

    register_import(cli)
    register_export(cli)
    register_read(cli)
    cli()
