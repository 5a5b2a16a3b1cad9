"""The `parley` command: serve the API and manage access keys."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from service.settings import Settings

cli = typer.Typer(help="Parley: event-sourced negotiation timelines.", no_args_is_help=True, add_completion=False)
keys_cli = typer.Typer(help="Create, list and revoke access keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
audit_cli = typer.Typer(help="Tamper evidence: verify the hash chain, take signed checkpoints.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
projections_cli = typer.Typer(help="Persisted views and the webhook relay: status, rebuilds, parked events.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")
console = Console()
err = Console(stderr=True)

DatabaseOption = Annotated[
    Optional[str],
    typer.Option("--database", help="SQLite file path or postgresql:// URL (default: $PARLEY_DATABASE_URL or var/parley.db)."),
]


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        console.print(f"parley {version('parley')}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print Parley's version and exit.")
    ] = False,
) -> None:
    """Parley: event-sourced negotiation timelines."""


def _settings(database: str | None = None, *, serving: bool = False, **overrides: object) -> Settings:
    from service.settings import SettingsError

    try:
        settings = Settings.from_env(database_url=database, **overrides)
        if serving:
            settings.check_read_database()
        return settings
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
    settings = _settings(database, serving=True, host=host, port=port, workers=workers)
    if settings.metrics_dir:  # before prometheus_client is imported, in this process and the workers it starts
        from service.http.metrics_dir import prepare_metrics_dir

        prepare_metrics_dir(settings.metrics_dir)

    from eventsourcing.persistence import PersistenceError

    from events.errors import ParleyError
    from service.logs import configure_logging
    from service.cli.serving import PortInUseError, check_port_free, prepare
    from service.cli.serving import serve as run_server

    configure_logging(settings.log_format, settings.log_level)
    try:
        check_port_free(settings.host, settings.port)
    except OSError as error:
        hint = "; stop the other server, or serve on another port with --port N (or PARLEY_PORT)" if isinstance(error, PortInUseError) else ""
        err.print(f"[red]error:[/red] cannot serve on {settings.host}:{settings.port}: {error.strerror or error}{hint}", soft_wrap=True)
        raise typer.Exit(1) from None
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
    from service.auth import KeyCreate
    from service.stores import open_log
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

    from service.stores import open_log
    from service.auth import KeyStore

    log = open_log(_settings(database))
    try:
        found = KeyStore(log).list(limit=1000)
    finally:
        log.close()
    if as_json:
        print(msgspec.json.encode(found).decode())
        return
    # ids and names whole (`keys revoke` takes either); the times fold
    table = Table(Column("id", no_wrap=True), Column("name", no_wrap=True), "role", Column("created", overflow="fold"),
                  Column("revoked", overflow="fold"))
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
    from service.stores import open_log
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
    """Recompute the hash chain, check the index and the keys table against the events; exit 1 and name each problem."""
    import msgspec

    from events.audit import Checkpoint
    from service.auth import KeyStore
    from service.queries.audit import verify_log
    from service.signing import Signer
    from service.stores import open_log

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
        report = verify_log(log, KeyStore(log), Signer.load(settings.signing_key, settings.signing_key_file), kept)
    finally:
        log.close()
    if as_json:
        print(msgspec.json.encode(report).decode())
    elif not report.ok:
        for problem in report.problems:
            where = ", ".join(f"{name} {value}" for name, value in (
                ("position", problem.position), ("event", problem.event_id), ("key", problem.key_id), ("column", problem.column),
            ) if value is not None)
            err.print(f"[red]FAILED:[/red] {problem.table}" + (f" ({where})" if where else "") + f": {problem.detail}", soft_wrap=True)
        if report.problem_count > len(report.problems):
            err.print(f"... and {report.problem_count - len(report.problems)} more")
    else:
        extends = f"; it extends the checkpoint at position {kept.position}" if kept else ""
        console.print(f"[green]ok[/green]: {report.checked} events and {report.keys_checked} keys, head {report.head_position} {report.head_hash}{extends}")
    if not report.ok:
        raise typer.Exit(1)


@audit_cli.command("checkpoint")
def audit_checkpoint(database: DatabaseOption = None) -> None:
    """Print a signed checkpoint of the log's head (JSON), for someone outside to keep."""
    import msgspec

    from service.queries.audit import checkpoint
    from service.signing import Signer
    from service.stores import open_log

    settings = _settings(database)
    log = open_log(settings)
    try:
        signed = checkpoint(log, Signer.load(settings.signing_key, settings.signing_key_file))
    finally:
        log.close()
    print(msgspec.json.encode(signed).decode())


def _views(database: str | None):  # type: ignore[no-untyped-def]
    from service.followers.views import open_runners, open_view_tables
    from service.stores import open_log

    log = open_log(_settings(database))
    tables = open_view_tables(log)
    return log, tables, open_runners(log, tables)


@projections_cli.command("status")
def projections_status(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Each follower's position in the global log, how far behind the head it is, its parked events and which process follows it."""
    import json

    from service.followers.leases import open_lease
    from service.followers.parking import parked_events
    from service.webhooks.store import RELAY, open_webhook_tables

    log, tables, runners = _views(database)
    hooks = open_webhook_tables(log)
    try:
        head = log.head()
        parked: dict[str, int] = {}
        for event in parked_events(tables):
            parked[event.follower] = parked.get(event.follower, 0) + 1
        positions = {name: (runner.spec.table, tables.position(runner.spec)) for name, runner in runners.items()}
        positions[RELAY] = ("parley_outbox", hooks.position())
        rows = []
        for name, (table_name, position) in positions.items():
            lease = open_lease(log.env, name)
            try:
                holder = lease.holder()
            finally:
                lease.release()
            rows.append({"view": name, "table": table_name, "position": position, "head": head, "lag": head - position,
                         "parked": parked.get(name, 0), "holder": holder})
        if as_json:
            print(json.dumps(rows))
            return
        table = Table("view", "table", "position", "head", "lag", "parked", "followed by")
        for row in rows:
            table.add_row(row["view"], row["table"], str(row["position"]), str(head), str(row["lag"]),
                          f"[red]{row['parked']}[/red]" if row["parked"] else "0", row["holder"] or "[yellow]nobody[/yellow]")
        console.print(table)
        if any(row["parked"] for row in rows):
            console.print("Events are parked: see them with [bold]parley projections parked[/bold], "
                          "fix the cause, then [bold]parley projections retry[/bold].")
    finally:
        hooks.datastore.close()  # type: ignore[attr-defined]
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()


@projections_cli.command("parked")
def projections_parked(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Events a view or the webhook relay could not process and went past (poison events), with the error."""
    import msgspec

    from service.followers.parking import parked_events

    log, tables, _ = _views(database)
    try:
        found = parked_events(tables)
    finally:
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()
    if as_json:
        print(msgspec.json.encode(found).decode())
        return
    table = Table(Column("follower", no_wrap=True), "position", Column("event", no_wrap=True), Column("negotiation", no_wrap=True),
                  Column("parked at", overflow="fold"), "attempts", Column("error", overflow="fold"))
    for event in found:
        table.add_row(event.follower, str(event.position), event.event_id or "", event.negotiation_id or "",
                      event.parked_at, str(event.attempts), event.error)
    console.print(table)


@projections_cli.command("retry")
def projections_retry(
    position: Annotated[Optional[int], typer.Argument(help="The parked event's position (default: every parked event).")] = None,
    view: Annotated[Optional[str], typer.Option("--view", help="Only this view, or webhook-relay (default: every follower).")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Process parked events again, once their cause is fixed; exit 1 if any still fails (it stays parked, with the new error)."""
    import msgspec

    from service.followers.parking import Parked, parked_events
    from service.followers.tables import VIEWS
    from service.webhooks.store import RELAY

    if view is not None and view not in (*VIEWS, RELAY):
        err.print(f"[red]error:[/red] no view {view!r}; followers: {', '.join((*VIEWS, RELAY))}")
        raise typer.Exit(2)
    positions = [position] if position is not None else []
    log, tables, runners = _views(database)
    hooks = None
    try:
        wanted = parked_events(tables, view, positions)
        failing: list[Parked] = []
        for name in sorted({event.follower for event in wanted}):
            if name == RELAY:
                hooks = _webhooks(log, database)
                failing += hooks.relay.retry_parked(positions)
            elif name in runners:
                failing += runners[name].retry_parked(positions)
    finally:
        if hooks is not None:
            hooks.tables.datastore.close()
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()
    retried = [event for event in wanted if (event.follower, event.position) not in {(f.follower, f.position) for f in failing}]
    if as_json:
        print(msgspec.json.encode({"retried": retried, "still_parked": failing}).decode())
    else:
        if not wanted:
            console.print("No parked events" + (f" at position {position}" if position is not None else "") + ".")
        for event in retried:
            console.print(f"[green]processed[/green] {event.follower} position {event.position} ({event.event_id})")
        for event in failing:
            err.print(f"[red]still parked:[/red] {event.follower} position {event.position}: {event.error}")
    if failing:
        raise typer.Exit(1)


def _webhooks(log, database: str | None):  # type: ignore[no-untyped-def]
    """The webhook relay and sender, built as `parley deliver` builds them, not started."""
    from events.application import utcnow
    from service.signing import Signer
    from service.webhooks import open_webhooks

    settings = _settings(database)
    signer = Signer.load(settings.signing_key, settings.signing_key_file)
    return open_webhooks(log, secret_key=signer.derive_key("parley webhook secrets"), clock=utcnow,
                         allow_hosts=settings.allow_hosts, warn_days=settings.warn_days)


@projections_cli.command("rebuild")
def projections_rebuild(
    name: Annotated[Optional[str], typer.Argument(help="The view to rebuild (default: all).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Rebuild views from position 0, with a progress bar. Stop the projectors of the view first."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from service.followers.leases import open_lease
    from service.followers.tables import VIEWS

    if name is not None and name not in VIEWS:
        err.print(f"[red]error:[/red] no view {name!r}; views: {', '.join(VIEWS)}")
        raise typer.Exit(2)
    log, tables, runners = _views(database)
    chosen = {view_name: runner for view_name, runner in runners.items() if name is None or view_name == name}
    leases = [open_lease(log.env, view_name) for view_name in chosen]
    try:
        for lease in leases:  # a runner following the view would write over the rebuild
            if not lease.acquire():
                err.print(f"[red]error:[/red] view {lease.name!r} is followed by {lease.holder() or 'another process'}; "
                          "stop every `parley project` and `parley serve` that runs it first")
                raise typer.Exit(1)
        head = log.head()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
            for view_name, runner in chosen.items():
                task = bar.add_task(f"rebuilding {view_name}", total=head or 1)
                count = runner.rebuild(lambda done, total, task=task: bar.update(task, completed=done, total=max(total, 1)))
                bar.update(task, completed=max(count, 1), total=max(count, 1))
        console.print(f"Rebuilt up to position {head}.")
    finally:
        for lease in leases:
            lease.release()
        tables.datastore.close()  # type: ignore[attr-defined]
        log.close()


@cli.command()
def project(
    view: Annotated[Optional[list[str]], typer.Option("--view", help="Run only this view (repeat for several; default: all).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Run projection runners in the foreground; of several such processes, one follows each view, the others stand by."""
    import signal
    import threading

    from service.followers.views import open_runners, open_view_tables
    from service.followers.tables import VIEWS
    from service.stores import open_log
    from service.logs import configure_logging

    unknown = sorted(set(view or ()) - set(VIEWS))
    if unknown:
        err.print(f"[red]error:[/red] no view {', '.join(map(repr, unknown))}; views: {', '.join(VIEWS)}")
        raise typer.Exit(2)
    settings = _settings(database)
    configure_logging(settings.log_format, settings.log_level)
    log = open_log(settings)
    tables = open_view_tables(log)
    runners = open_runners(log, tables, view or None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # announced before the runners' threads start, so this line never splits one of their log lines in a shared output
    console.print(f"Following the log for views: {', '.join(runners)} (standing by for any view another process follows)")
    for runner in runners.values():
        runner.start(lease_poll=settings.lease_poll)
    stop.wait()
    for runner in runners.values():  # each finishes the batch in hand, then gives up its lease
        runner.stop()
    tables.datastore.close()  # type: ignore[attr-defined]
    log.close()


@cli.command()
def deliver(database: DatabaseOption = None) -> None:
    """Run the webhook relay and a sender in the foreground; senders share the outbox, one relay follows the log at a time."""
    import signal
    import threading

    from events.application import utcnow
    from service.stores import open_log
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
    console.print("Relaying the log to webhook subscribers (the relay stands by while another process holds it); Ctrl-C to stop")
    hooks.start(lease_poll=settings.lease_poll)
    stop.wait()
    hooks.stop()
    log.close()


def main() -> None:
    from service.cli.export import register as register_export
    from service.cli.imports import register as register_import
    from service.cli.ops import register as register_ops
    from service.cli.read import register as register_read
    from service.cli.webhooks import register as register_webhooks

    register_import(cli)
    register_export(cli)
    register_read(cli)
    register_ops(cli)
    register_webhooks(cli)
    cli()
