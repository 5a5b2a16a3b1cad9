"""Read commands for the `parley` CLI: negotiations, state, diffs, claims, timeline and the global log.

`register(cli)` adds them to the main Typer app. Every command works on the local store
(`--database`), prints rich tables (or JSON with `--json`), closes the log when done, and turns
every failure into one red line on stderr: exit 1, or 2 for a bad argument.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import msgspec
import psycopg
import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Column, Table
from rich.text import Text

if TYPE_CHECKING:
    from events.application import ParleyLog

console = Console()
err = Console(stderr=True, soft_wrap=True)

# The same option as service/cli.py's; defined here too so that module can import this one at any point.
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="SQLite file path or postgresql:// URL (default: $PARLEY_DATABASE_URL or var/parley.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]

POLL_SECONDS = 0.5
PAGE = 1000
_CLOSED = frozenset({"resolved", "dropped"})


class BadArgument(Exception):
    """A command-line value that does not parse: exit code 2."""


# --- plumbing --------------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    first = " ".join(str(message).split()) or "failed"
    err.print(f"[red]error:[/red] {escape(first)}", highlight=False)
    raise typer.Exit(code)


def _pass_through() -> tuple[type[BaseException], ...]:
    """Exits and usage errors that typer handles itself (typer may vendor click, or use click's)."""
    found: list[type[BaseException]] = [typer.Exit, typer.Abort]
    for module, names in (("typer.exceptions", ("TyperException",)), ("click.exceptions", ("Exit", "Abort", "ClickException"))):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(imported, name) for name in names if isinstance(getattr(imported, name, None), type)]
    return tuple(dict.fromkeys(found))


_PASS_THROUGH = _pass_through()


@contextmanager
def _reported() -> Iterator[None]:
    """Every failure as one red line on stderr: 2 for a bad argument, 1 for anything else."""
    from eventsourcing.persistence import PersistenceError

    from events.errors import InvalidQueryError, ParleyError, StoreUnavailableError

    try:
        yield
    except _PASS_THROUGH:
        raise
    except (BadArgument, InvalidQueryError) as error:
        _fail(str(error), 2)
    except StoreUnavailableError as error:
        _fail(f"the store is unreachable: {error}", 1)
    except ParleyError as error:
        _fail(str(error), 1)
    except (PersistenceError, OSError, sqlite3.Error, psycopg.Error) as error:
        _fail(f"the store is unreachable: {error}", 1)


@contextmanager
def _log(database: str | None) -> Iterator[ParleyLog]:
    """The local store's log, closed afterwards. A read never creates an SQLite file that is not there."""
    from events.application import sqlite_file
    from service.stores import open_log
    from service.settings import Settings

    settings = Settings.from_env(database_url=database)
    path = sqlite_file(settings.database_url)
    if path is not None and not os.path.isfile(os.path.expanduser(path)):
        from events.errors import StoreUnavailableError

        where = os.path.abspath(os.path.expanduser(path))
        raise StoreUnavailableError(f"no store at {where} (give --database or set $PARLEY_DATABASE_URL)")
    log = open_log(settings)
    try:
        yield log
    finally:
        log.close()


def _date(value: str | None, option: str) -> dt.date | None:
    from events.errors import InvalidQueryError
    from service.queries.params import parse_date

    try:
        return parse_date(value, option)
    except InvalidQueryError as error:
        raise BadArgument(str(error)) from None


def _timestamp(value: str | None, option: str) -> dt.datetime | None:
    from events.errors import InvalidQueryError
    from service.queries.params import parse_timestamp

    try:
        return parse_timestamp(value, option)
    except InvalidQueryError as error:
        raise BadArgument(str(error)) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def _dash(value: Any) -> str:
    return "—" if value is None or value == "" or value == () else str(value)


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:g}%"


def _days(days: int | None) -> str:
    if days is None:
        return "—"
    return "today" if days == 0 else f"{days} day{'s' if days != 1 else ''}"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# --- negotiations list -----------------------------------------------------------------------


def negotiations_list(json: JsonOption = False, database: DatabaseOption = None) -> None:
    """List negotiations: id, title, parties, events, first and last occurred_on."""
    from service.queries.negotiations import all_negotiations

    with _reported():
        with _log(database) as log:
            found = all_negotiations(log, PAGE)
        _print_negotiations(found, json)


def _print_negotiations(found: list[Any], json: bool) -> None:
    if json:
        _print_json(found)
        return
    if not found:
        console.print("[dim]No negotiations yet.[/dim]")
        return
    # ids and dates whole at 80 columns; the title wraps
    table = Table(
        Column("id", no_wrap=True), "title", "parties", "events", Column("first event", no_wrap=True),
        Column("last event", no_wrap=True), title="Negotiations (dates: occurred_on)",
    )
    for n in found:
        table.add_row(
            escape(n.id), escape(n.title), escape(", ".join(n.parties)), str(n.event_count),
            _dash(n.first_occurred_on), _dash(n.last_occurred_on),
        )
    console.print(table)


# --- state -----------------------------------------------------------------------------------


def state(
    negotiation_id: Annotated[str, typer.Argument(help="The negotiation's id.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="World date YYYY-MM-DD (default: today, UTC).")] = None,
    known_at: Annotated[
        str | None, typer.Option("--known-at", help="RFC 3339 time: use what was recorded by then (default: now).")
    ] = None,
    legal_basis: Annotated[
        str | None, typer.Option("--legal-basis", help="Keep tariffs whose legal basis contains this (case-blind).")
    ] = None,
    why: Annotated[
        bool, typer.Option("--why", help="Then each value's reasons: the events behind it (date · type · what · source); "
                           "with --json, the answer's because_events.")
    ] = False,
    json: JsonOption = False,
    database: DatabaseOption = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Ask this served Parley instead of the local store (answers kept in the "
                                 "CLI's cache and revalidated with their ETags; PARLEY_CLI_CACHE=off keeps none).", show_default=False)
    ] = None,
    key: Annotated[str | None, typer.Option("--key", envvar="PARLEY_KEY", help="An access key for --url.", show_default=False)] = None,
) -> None:
    """The negotiation on a day: tariffs by direction, truce, measures, open issues, upcoming deadlines."""
    from service.queries.reasons import NOT_EXPANDED
    from service.queries.state import state_at
    from service.queries.store import ReadStore

    if url is not None:
        negotiation, answer = _remote_state(url, key, negotiation_id, as_of, known_at, legal_basis, why)
    else:
        with _reported():
            day, at = _date(as_of, "--as-of"), _timestamp(known_at, "--known-at")
            with _log(database) as log:
                negotiation = log.negotiation(negotiation_id)
                now = log.clock().astimezone(dt.UTC)
                answer = state_at(
                    ReadStore.over(log), negotiation_id, day or now.date(), at or now, legal_basis,
                    expand=_BECAUSE if why else NOT_EXPANDED,
                )
    with _reported():
        _print_state(negotiation, answer, json)
        if why and not json:
            console.print(_why_panel(answer))


def _remote_state(
    url: str, key: str | None, negotiation_id: str, as_of: str | None, known_at: str | None, legal_basis: str | None, why: bool,
) -> tuple[Any, Any]:
    """The negotiation and its state from a served Parley, through the CLI's answer cache (GETs only)."""
    from types import SimpleNamespace
    from urllib.parse import quote

    from service.cli import remote
    from service.queries.negotiations import NegotiationOut
    from service.queries.state import StateOut

    params = {name: value for name, value in
              {"as_of": as_of, "known_at": known_at, "legal_basis": legal_basis, "expand": "because" if why else None}.items()
              if value is not None}
    path = f"/v1/negotiations/{quote(negotiation_id, safe='')}"
    try:
        with remote.client(url, key, cached=True) as http:
            opened = http.get(path)
            if opened.is_error:
                raise remote.refused(opened)
            answered = http.get(f"{path}/state", params=params)
            if answered.is_error:
                raise remote.refused(answered)
            shown = msgspec.json.decode(opened.content, type=NegotiationOut)
            negotiation = SimpleNamespace(negotiation_id=shown.id, title=shown.title, parties=shown.parties)
            return negotiation, msgspec.json.decode(answered.content, type=StateOut)
    except remote.RemoteError as error:
        _fail(str(error), 1)
    except msgspec.ValidationError as error:
        _fail(f"{url} answered something that is not a Parley state answer ({error}): check --url", 1)


def warn_beyond_record(coverage: Any, day: Any) -> None:
    """One line on standard error when an answer is about a day past the end of the record."""
    if coverage.beyond_record:
        how = "declared complete" if coverage.declared else "last recorded event"
        err.print(
            f"[yellow]warning:[/yellow] {day} is past the end of the record ({how}: {coverage.record_through}); "
            "what follows carries the record forward, it is not known fact",
            highlight=False,
        )


def _print_state(negotiation: Any, answer: Any, json: bool) -> None:
    warn_beyond_record(answer.coverage, answer.as_of)
    if json:
        _print_json(answer)
        return
    console.print(
        Text.assemble(
            (negotiation.title, "bold"), f"  ({negotiation.negotiation_id}; parties {', '.join(negotiation.parties)})"
        )
    )
    console.print(
        f"[dim]as of[/dim] {answer.as_of}  [dim]known at[/dim] {_iso(answer.known_at)}  [dim]position[/dim] {answer.position}"
        f"  [dim]record through[/dim] {_dash(answer.coverage.record_through)}",
        highlight=False,
    )
    for renderable in (
        _tariffs_panel(answer.tariffs),
        _truce_panel(answer.truce),
        _measures_panel(answer.measures),
        _issues_panel(answer.issues),
        _deadlines_panel(answer.deadlines),
        _rounds_panel(answer.rounds),
    ):
        console.print(renderable)


def _none(text: str = "none") -> Text:
    return Text(text, style="dim")


def _grid(*headers: str, keep: tuple[str, ...] = ()) -> Table:
    """A borderless table; `keep` columns never wrap."""
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold dim")
    for header in headers:
        table.add_column(header, no_wrap=header in keep)
    return table


class Keyed:
    """Rows whose first cell is an id, which is never split: a table while the ids leave the other columns room,
    else each id on a line of its own with the rest of its row under it (a 62-character measure id at 80 columns)."""

    def __init__(self, *headers: str, keep: tuple[str, ...] = (), right: tuple[str, ...] = ()) -> None:
        self.headers, self.keep, self.right = headers, keep, right
        self.rows: list[tuple[Text, *tuple[RenderableType, ...]]] = []

    def add_row(self, ident: Text, *cells: RenderableType) -> None:
        self.rows.append((ident, *cells))

    def _fits(self, console: Console, options: ConsoleOptions) -> bool:
        """Whole ids, and no other column narrower than its longest word (or its whole text, for `keep` columns)."""
        ids = max((cell_len(row[0].plain.split("\n")[0]) for row in self.rows), default=0)
        if ids > options.max_width // 2:
            return False
        needed = [ids]
        for index, header in enumerate(self.headers[1:], start=1):
            measured = [Measurement.get(console, options, cell) for cell in (Text(header), *(row[index] for row in self.rows))]
            needed.append(max(m.maximum if header in self.keep else m.minimum for m in measured))
        return sum(needed) + 2 * (len(needed) - 1) <= options.max_width

    def _table(self, with_ids: bool) -> Table:
        headers = self.headers if with_ids else self.headers[1:]
        # the id column never wraps: the table is only used when the ids fit (_fits), so it is never cut either
        table = _grid(*headers, keep=(*self.keep, self.headers[0]) if with_ids else self.keep)
        if not with_ids:
            table.show_header = False
        for column in table.columns:
            column.justify = "right" if column.header in self.right else "left"
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._fits(console, options):
            table = self._table(with_ids=True)
            for row in self.rows:
                table.add_row(*row)
            yield table
            return
        for row in self.rows:
            yield row[0]
            rest = self._table(with_ids=False)
            rest.add_row(*row[1:])
            yield Padding(rest, (0, 0, 0, 2))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def _id(text: str, *below: tuple[str, str]) -> Text:
    """An id cell: the id on its first line, then lines under it with their styles."""
    cell = Text(text)
    for line, style in below:
        cell.append("\n" + line, style=style)
    return cell


def _tariffs_panel(tariffs: Any) -> Panel:
    title = "Tariffs by direction" + (f" (legal basis contains {tariffs.legal_basis!r})" if tariffs.legal_basis else "")
    if not tariffs.directions:
        return Panel(_none("no tariffs"), title=escape(title), title_align="left")
    parts: list[Any] = []
    for direction in tariffs.directions:
        parts.append(
            Text.assemble(
                (f"{direction.imposed_by} → {direction.applies_to}", "bold"),
                "  total additional ",
                (_pct(direction.total_additional_pct), "bold yellow"),
            )
        )
        if direction.measures:
            table = Keyed("measure", "rate", "legal basis", "since", keep=("rate", "since"), right=("rate",))
            for m in direction.measures:
                rate = Text(_pct(m.rate_pct))
                if m.lapse_rate_pct is not None:
                    rate.append(f" ({_pct(m.lapse_rate_pct)} on lapse)", style="dim")
                marks = _line_marks(m)
                table.add_row(_id(m.measure_id + marks), rate, Text(_dash(m.legal_basis)), str(m.since))
            parts.append(Padding(table, (0, 0, 0, 2)))
        else:
            parts.append(Padding(_none("nothing in force"), (0, 0, 0, 2)))
        for line in direction.not_in_force:
            rate = f" {_pct(line.rate_pct)}" if line.rate_pct is not None else ""
            since = f" since {line.since}" if line.since else ""
            status = _dash(line.status).replace("_", " ")
            parts.append(Padding(Text(f"not in force: {line.measure_id} {status}{rate}{since}", style="dim"), (0, 0, 0, 2)))
        for p in direction.pending:
            change = f"{p.status.replace('_', ' ')}" + (f" at {_pct(p.rate_pct)}" if p.rate_pct is not None else "")
            parts.append(
                Padding(Text(f"pending: {p.measure_id} {change} from {p.effective_from}", style="cyan"), (0, 0, 0, 2))
            )
        lapse = direction.on_truce_lapse
        if lapse is not None:
            parts.append(Padding(_lapse(direction, lapse), (0, 0, 0, 2)))
        parts.append(Text(""))
    parts.pop()
    return Panel(Group(*parts), title=escape(title), title_align="left")


def _line_marks(line: Any) -> str:
    marks = ["every destination"] if line.all_destinations else []
    marks += ["products listed" if not line.exemptions else "exemptions"] if line.coverage == "partial" else []
    return f" ({', '.join(marks)})" if marks else ""


def _lapse(direction: Any, lapse: Any) -> Text:
    """The total if the truce runs out, and the measures whose rate would change."""
    now = {m.measure_id: m.rate_pct for m in direction.measures}
    then = {m.measure_id: m.rate_pct for m in lapse.measures}
    changes = [
        f"{measure_id} {_pct(now.get(measure_id))} → {_pct(then.get(measure_id))}"
        for measure_id in dict.fromkeys([*now, *then])
        if now.get(measure_id) != then.get(measure_id)
    ]
    text = Text(
        f"on truce lapse ({lapse.truce_id or 'truce'}), from {lapse.applies_from}: "
        f"total {_pct(lapse.total_additional_pct)}",
        style="magenta",
    )
    if changes:
        text.append(f" ({'; '.join(changes)})")
    return text


_TRUCE_STYLES = {"active": "green", "pending": "cyan", "lapsed": "red", "ended": "red", "none": "dim"}


def _truce_panel(truce: Any) -> Panel:
    if truce.status == "none":
        return Panel(_none("no truce"), title="Truce", title_align="left")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    table.add_row("status", Text(truce.status, style=f"bold {_TRUCE_STYLES.get(truce.status, '')}"))
    table.add_row("truce", escape(_dash(truce.truce_id)))
    if truce.parties:
        table.add_row("parties", escape(", ".join(truce.parties)))
    table.add_row("effective from", _dash(truce.effective_from))
    expires = Text(_dash(truce.expires_on))
    if truce.ends == "start_of_day":
        expires.append(f" at 12:01 a.m. (last day {truce.lapses_on - dt.timedelta(days=1)})", style="dim")
    if truce.days_remaining is not None:
        expires.append(f" ({_days(truce.days_remaining)} left)", style="bold")
    table.add_row("expires", expires)
    if truce.ended_on is not None:
        table.add_row("ended on", str(truce.ended_on))
    table.add_row(
        "extensions",
        "; ".join(f"to {e.due_on} (agreed {e.occurred_on})" for e in truce.extensions) if truce.extensions else "none",
    )
    if truce.suspends:
        table.add_row("suspends", escape(", ".join(truce.suspends)))
    return Panel(table, title="Truce", title_align="left")


def _measures_panel(measures: Any) -> Panel:
    if not measures.measures:
        return Panel(_none(), title="Measures (non-tariff)", title_align="left")
    table = Keyed("measure", "direction", "status")
    for m in measures.measures:
        name = _id(m.measure_id, *([(_clip(m.name, 80), "dim")] if m.name else []))
        status = Text(_dash(m.status).replace("_", " "), style="bold" if m.in_force else "dim")
        if m.rate_pct is not None:
            status.append(f" {_pct(m.rate_pct)}")
        if m.since is not None:
            status.append(f" since {m.since}")
        if m.until is not None:
            status.append(f" until {m.until}")
        for p in m.pending:
            status.append(f"\npending: {p.status.replace('_', ' ')} from {p.effective_from}", style="cyan")
        table.add_row(name, f"{m.imposed_by} → {m.applies_to}\n{m.kind.replace('_', ' ')}", status)
    return Panel(table, title="Measures (non-tariff)", title_align="left")


def _issues_panel(issues: Any) -> Panel:
    open_issues = [i for i in issues.issues if i.status not in _CLOSED]
    if not open_issues:
        return Panel(_none("no open issues"), title="Open issues", title_align="left")
    table = Keyed("issue", "title", "status", "latest position")
    for issue in open_issues:
        latest = issue.positions[-1] if issue.positions else None
        position = _clip(f"{latest.by} {latest.kind} ({latest.occurred_on}): {latest.text}", 100) if latest else "—"
        table.add_row(_id(issue.issue_id), Text(_dash(issue.title)), issue.status.replace("_", " "), Text(position))
    return Panel(table, title=f"Open issues ({len(open_issues)})", title_align="left")


def _deadlines_panel(deadlines: Any) -> Panel:
    if not deadlines.upcoming:
        return Panel(_none("no upcoming deadlines"), title="Upcoming deadlines", title_align="left")
    table = Keyed("deadline", "title", "due", "days left", "consequence", keep=("due", "days left"))
    for d in deadlines.upcoming:
        due = Text(str(d.due_on))
        if d.ends == "start_of_day":
            due.append(" 12:01 a.m.", style="dim")
        if d.original_due_on is not None and d.original_due_on != d.due_on:
            due.append(f"\nwas {d.original_due_on}", style="dim")
        table.add_row(
            _id(d.deadline_id),
            Text(_dash(d.title)),
            due,
            Text(_days(d.days_remaining), style="bold"),
            Text(_clip(_dash(d.consequence), 90)),
        )
    return Panel(table, title="Upcoming deadlines", title_align="left")


def _rounds_panel(rounds: Any) -> Panel:
    if not rounds.rounds:
        return Panel(_none(), title="Rounds", title_align="left")
    table = _grid("round", "status", "dates", "location")
    for r in rounds.rounds:
        dates = str(r.starts_on) + (f" – {r.ends_on}" if r.ends_on and r.ends_on != r.starts_on else "")
        table.add_row(escape(r.name), r.status, dates, escape(_dash(r.location)))
    return Panel(table, title="Rounds", title_align="left")


# --- why: the events behind the values ------------------------------------------------------

_BECAUSE = frozenset({"because"})


def reason(event: Any) -> Text:
    """One event behind a value (a BecauseEvent): date · type · its one line · its source and grade (--json adds the url)."""
    text = Text.assemble((str(event.occurred_on), "bold"), " · ", (event.type, "cyan"), " · ", _clip(event.display.summary))
    source = event.source
    if source is not None:
        grade = f"{source.reliability or ''}{source.credibility or ''}"
        text.append(f" · {source.name}" + (f" ({grade})" if grade else ""), style="italic")
    return text


def _reasons(because: Any, events: dict[str, Any], indent: int = 2) -> Padding:
    lines = [reason(events[i]) if i in events else Text(i, style="dim") for i in because]
    return Padding(Group(*lines) if lines else _none("no events named"), (0, 0, 0, indent))


def _why_panel(answer: Any) -> Panel:
    from service.queries.state import PARTS, listed_reasons

    events = answer.because_events or {}
    parts: list[Any] = []
    for path, because in listed_reasons({part: getattr(answer, part) for part in PARTS}):
        if because:
            parts += [Text(path, style="bold"), _reasons(because, events)]
    return Panel(Group(*parts) if parts else _none("no values"), title="Why: the events behind each value", title_align="left")


# --- diff ------------------------------------------------------------------------------------

_DIFF_OPTIONS = {"from": "--from", "to": "--to", "known_from": "--known-from", "known_to": "--known-to", "as_of": "--as-of",
                 "known_at": "--known-at"}


def diff(
    negotiation_id: Annotated[str, typer.Argument(help="The negotiation's id.")],
    start: Annotated[str | None, typer.Option("--from", help="World date before, YYYY-MM-DD (with --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="World date after, YYYY-MM-DD (with --from).")] = None,
    known_from: Annotated[
        str | None, typer.Option("--known-from", help="RFC 3339 recording time before (with --known-to): what our record changed.")
    ] = None,
    known_to: Annotated[str | None, typer.Option("--known-to", help="RFC 3339 recording time after (with --known-from).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="With --known-from/--known-to: the world date (default: today).")] = None,
    known_at: Annotated[
        str | None, typer.Option("--known-at", help="With --from/--to: use what was recorded by then (default: now).")
    ] = None,
    legal_basis: Annotated[
        str | None, typer.Option("--legal-basis", help="Keep tariffs whose legal basis contains this (case-blind).")
    ] = None,
    json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """What changed between two world dates (or two recording times), each change with the events behind it."""
    import re

    from events.errors import InvalidQueryError
    from service.queries.state import diff_between, diff_moments
    from service.queries.store import ReadStore

    with _reported():
        given = {"from": start, "to": end, "known_from": known_from, "known_to": known_to, "as_of": as_of, "known_at": known_at}
        for field, value in given.items():  # each value parses first, so an error names its option
            (_date if field in ("from", "to", "as_of") else _timestamp)(value, _DIFF_OPTIONS[field])
        try:
            moments = diff_moments(given)
        except InvalidQueryError as error:
            named = re.sub(r"\b(known_from|known_to|known_at|as_of|from|to)\b", lambda m: _DIFF_OPTIONS[m.group(1)], str(error))
            raise BadArgument(named) from None
        with _log(database) as log:
            negotiation = log.negotiation(negotiation_id)
            now = log.clock().astimezone(dt.UTC)
            before, after = ((day or now.date(), at or now) for day, at in moments)
            answer = diff_between(ReadStore.over(log), negotiation_id, before, after, legal_basis, expand=_BECAUSE)
        warn_beyond_record(answer.coverage, answer.after.as_of)
        _print_diff(negotiation, answer, json)


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return _clip(msgspec.json.encode(value).decode(), 60)
    return str(value)


def _print_diff(negotiation: Any, answer: Any, json: bool) -> None:
    if json:
        _print_json(answer)
        return
    first, last = answer.before, answer.after
    if first.known_at == last.known_at:
        span = f"from {first.as_of} to {last.as_of} (known at {_iso(last.known_at)})"
    else:
        span = f"between {_iso(first.known_at)} and {_iso(last.known_at)} (as of {last.as_of})"
    count = len(answer.changes)
    console.print(
        Text.assemble((negotiation.title, "bold"), f" ({negotiation.negotiation_id}): {count} change{'s' if count != 1 else ''} {span}"),
        highlight=False,
    )
    events = answer.because_events or {}
    changes = answer.changes
    for index, change in enumerate(changes):
        line = Text(change.path, style="bold")
        line.append(f"  {_shown(change.before)} → {_shown(change.after)}", style="")
        console.print(line, highlight=False)
        # changes with the same reasons in a row (a measure's rate and the direction's total) share one list
        if change.because and (index + 1 == len(changes) or changes[index + 1].because != change.because):
            console.print(Text("  because:", style="dim"), _reasons(change.because, events, indent=4), highlight=False)


# --- claims ----------------------------------------------------------------------------------


def claims(
    negotiation_id: Annotated[str, typer.Argument(help="The negotiation's id.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="World date YYYY-MM-DD: claims made by then (default: today, UTC).")] = None,
    known_at: Annotated[
        str | None, typer.Option("--known-at", help="RFC 3339 time: use what was recorded by then (default: now).")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only subjects that are single, disputed, confirmed or contradicted.")
    ] = None,
    json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Claims by subject: each side's speakers, sources and grades side by side, and how and when the record settled it."""
    from events.errors import InvalidQueryError
    from service.queries.claims import ClaimsPage, claim_status, claims_page
    from service.queries.params import decode_cursor
    from service.queries.store import ReadStore

    with _reported():
        day, at = _date(as_of, "--as-of"), _timestamp(known_at, "--known-at")
        try:
            wanted = claim_status(status)
        except InvalidQueryError as error:
            raise BadArgument(f"--status {error.reason}, not {status!r}") from None
        with _log(database) as log:
            negotiation = log.negotiation(negotiation_id)
            store = ReadStore.over(log)
            now = log.clock().astimezone(dt.UTC)
            items: list[Any] = []
            events: dict[str, Any] = {}
            after: int | None = None
            while True:
                page = claims_page(store, negotiation_id, day or now.date(), at or now, wanted, after, PAGE, expand=_BECAUSE)
                items += page.items
                events |= page.because_events or {}
                if page.next is None:
                    break
                after = decode_cursor(page.next)
        _print_claims(negotiation, ClaimsPage(items=items, next=None, because_events=events), day or now.date(), json)


_CLAIM_STYLES = {"disputed": "bold yellow", "confirmed": "bold green", "contradicted": "bold red", "single": "dim"}


def _print_claims(negotiation: Any, answer: Any, day: dt.date, json: bool) -> None:
    if json:
        _print_json(answer)
        return
    count = len(answer.items)
    console.print(
        Text.assemble((negotiation.title, "bold"), f" ({negotiation.negotiation_id}): {count} claim subject{'s' if count != 1 else ''} as of {day}"),
        highlight=False,
    )
    if not answer.items:
        console.print(_none("No claims made by then."))
    events = answer.because_events or {}
    for subject in answer.items:
        console.print(Text(""))
        console.print(Text.assemble((subject.subject, "bold"), "  ", (subject.status, _CLAIM_STYLES.get(subject.status, ""))))
        table = _grid("side", "speaker", "said on", "source", "grade", "verdict", keep=("said on", "grade"))
        sides = list(dict.fromkeys(c.value for c in subject.values))
        for side in sides:
            for claim in (c for c in subject.values if c.value == side):
                source = claim.source
                grade = f"{source.reliability or ''}{source.credibility or ''}" if source else ""
                table.add_row(
                    Text(side, style="bold"),
                    Text(claim.speaker + (f" ({claim.party})" if claim.party else "")),
                    str(claim.occurred_on),
                    Text(source.name if source else "—"),
                    grade or "—",
                    Text(_dash(claim.verdict), style=_CLAIM_STYLES.get(claim.verdict or "", "")),
                )
        console.print(Padding(table, (0, 0, 0, 2)))
        if subject.settled_by is None:
            console.print(Padding(_none(f"not settled by {day}"), (0, 0, 0, 2)))
        else:
            console.print(Padding(Text(f"settled on {subject.settled_on} as {subject.settled_value} by:"), (0, 0, 0, 2)))
            console.print(_reasons((subject.settled_by,), events, indent=4), highlight=False)


# --- timeline --------------------------------------------------------------------------------


def _clip(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(item: dict[str, Any]) -> str:
    """One line about an event (an API envelope): its `display` summary (events/describe.py)."""
    return _clip(item["display"]["summary"])


def _source(item: dict[str, Any]) -> str:
    source = item.get("source") or {}
    return source.get("name") or ""


def _marks(item: dict[str, Any]) -> str:
    marks = [name for name, field in (("retracted", "retracted_by"), ("corrected", "corrected_by")) if item.get(field)]
    return f" [{', '.join(marks)}]" if marks else ""


def timeline(
    negotiation_id: Annotated[str, typer.Argument(help="The negotiation's id.")],
    start: Annotated[str | None, typer.Option("--from", help="First world date YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last world date YYYY-MM-DD.")] = None,
    known_at: Annotated[
        str | None, typer.Option("--known-at", help="RFC 3339 time: only what was recorded by then (default: now).")
    ] = None,
    json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """The negotiation's events in world order (occurred_on, then version)."""
    from service.queries.params import decode_cursor
    from service.queries.state import timeline_page
    from service.queries.store import ReadStore

    with _reported():
        first, last = _date(start, "--from"), _date(end, "--to")
        at = _timestamp(known_at, "--known-at")
        with _log(database) as log:
            negotiation = log.negotiation(negotiation_id)
            store = ReadStore.over(log)
            now = log.clock().astimezone(dt.UTC)
            items: list[dict[str, Any]] = []
            after: int | None = None
            while True:
                page = timeline_page(store, negotiation_id, first, last, at or now, after, PAGE)
                items += page.items
                if page.next is None:
                    break
                after = decode_cursor(page.next)
        if last is not None:
            warn_beyond_record(page.coverage, last)
        _print_timeline(negotiation, items, first, last, json)


def _print_timeline(negotiation: Any, items: list[dict[str, Any]], first: Any, last: Any, json: bool) -> None:
    if json:
        _print_json(items)
        return
    span = f"{first or 'start'} to {last or 'now'}" if first or last else "all dates"
    table = Table(
        Column("date", no_wrap=True),
        Column("type", no_wrap=True),
        Column("summary", ratio=3),
        Column("source", ratio=1),
        box=box.SIMPLE_HEAD,
        expand=True,
        title_justify="left",
        title=f"{escape(negotiation.title)} ({escape(negotiation.negotiation_id)}): {len(items)} event{'s' if len(items) != 1 else ''}, {span}",
    )
    for item in items:
        summary = Text(describe(item) + _marks(item), style="dim" if item.get("retracted_by") else "")
        table.add_row(str(item["occurred_on"]), item["type"], summary, escape(_source(item)))
    console.print(table)


# --- events tail -----------------------------------------------------------------------------


def _tail_line(item: dict[str, Any]) -> Text:
    return Text.assemble(
        (f"#{item['position']:<6}", "dim"),
        f" {item['recorded_at']}  ",
        (f"{item['negotiation_id']}", "bold"),
        (f" v{item['version']}", "dim"),
        f"  {item['occurred_on']}  ",
        (item["type"], "cyan"),
        "  ",
        describe(item),
        (f"  ({_source(item)})" if _source(item) else "", "dim"),
    )


def _last(log: ParleyLog, count: int) -> list[Any]:
    """The last `count` events of the global log (positions may have gaps: widen until enough)."""
    head = log.head()
    span = count
    while True:
        after = max(head - span, 0)
        found = _all_after(log, after, upto=head)
        if len(found) >= count or after == 0:
            return found[-count:] if count else []
        span *= 4


def _all_after(log: ParleyLog, after: int, upto: int | None = None) -> list[Any]:
    found: list[Any] = []
    while True:
        items, _ = log.feed(after=after, limit=PAGE)
        if upto is not None:
            items = [a for a in items if a.position <= upto]
        found += items
        if len(items) < PAGE:
            return found
        after = items[-1].position


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While following, SIGTERM stops as Ctrl-C does: the log is closed and the exit code is 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def events_tail(
    after: Annotated[
        int | None, typer.Option("--after", min=0, help="Print events after this position (default: the last 20).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Keep printing new events until Ctrl-C.")] = False,
    json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Print the global log from a position and, with --follow, every event appended after."""
    from service.queries.negotiations import with_corrections

    def emit(log: ParleyLog, batch: list[Any]) -> None:
        # the API's envelopes, as GET /v1/events gives them (with corrected_by / retracted_by)
        for item in with_corrections(log, batch) if batch else ():
            if json:
                sys.stdout.write(msgspec.json.encode(item).decode() + "\n")
            else:
                console.print(_tail_line(item), soft_wrap=True, highlight=False)
        sys.stdout.flush()

    with _reported(), _sigterm_as_interrupt():
        try:
            with _log(database) as log:
                if after is None:
                    batch = _last(log, 20)
                    position = batch[-1].position if batch else log.head()
                else:
                    batch = _all_after(log, after)
                    position = batch[-1].position if batch else after
                emit(log, batch)
                while follow:
                    items, _ = log.feed(after=position, limit=PAGE)
                    if items:
                        emit(log, items)
                        position = items[-1].position
                    if len(items) < PAGE:
                        time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            sys.stdout.flush()
            raise typer.Exit(0) from None


# --- registration ----------------------------------------------------------------------------


def _group(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    """Add `negotiations list`, `state`, `diff`, `claims`, `timeline` and `events tail` to the `parley` app."""
    negotiations_cli = _group("Negotiations in the local store.")
    negotiations_cli.command("list")(negotiations_list)
    cli.add_typer(negotiations_cli, name="negotiations")
    cli.command("state")(state)
    cli.command("diff")(diff)
    cli.command("claims")(claims)
    cli.command("timeline")(timeline)
    events_cli = _group("The global event log.")
    events_cli.command("tail")(events_tail)
    cli.add_typer(events_cli, name="events")

