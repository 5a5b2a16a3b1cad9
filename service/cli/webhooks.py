"""`parley webhooks listen`: a receiver on loopback that a served Parley delivers to, each message verified and printed."""

from __future__ import annotations

import http.server
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from events.application import utcnow
from service.cli import remote

console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

MAX_BODY = 1 << 20  # Parley's messages are under 20 kB


class Received(msgspec.Struct, frozen=True):
    """One POST to the receiver: its body, its webhook-id, and why it did not verify (None when it did)."""

    body: bytes
    message_id: str
    problem: str | None = None


def _receiver(port: int, secret: Callable[[], str], inbox: queue.Queue[Received]) -> http.server.ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 that answers 204 to a message whose signature verifies, 401 to any other POST."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = self.headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:  # a garbled length, or more than Parley ever sends
                self._answer(413 if length.isdigit() else 400, b"bad length")
                return
            body = self.rfile.read(int(length))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not secret():  # a message faster than the answer that registered us: the sender tries again
                self._answer(503, b"not ready", {"retry-after": "1"})
                return
            try:
                Webhook(secret()).verify(body, headers, json_parse=False)
            except WebhookVerificationError as error:
                # a sender that signs with another secret retries, as it would with a real receiver
                inbox.put(Received(body, headers.get("webhook-id", "?"), str(error) or "the signature does not match"))
                self._answer(401, b"signature not verified")
                return
            inbox.put(Received(body, headers["webhook-id"]))
            self._answer(204, b"")

        def do_GET(self) -> None:  # noqa: N802
            self._answer(405, b"POST only")

        def _answer(self, status: int, text: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = client.request(method, path, **kwargs)
    if response.is_error:
        raise remote.refused(response)
    return response


# --- one line per message ----------------------------------------------------------------------------


# A few words on each message that is not an event's own (an event's line shows its display title).
_SAID = {
    "webhook.test": "test message for {webhook_id}",
    "webhook.disabled": "{webhook_id} disabled: {reason}",
    "truce.extended": "truce {truce_id} now expires {expires_on} (was {previous_expires_on})",
    "truce.lapsed": "truce {truce_id} lapsed (expired {expired_on})",
    "deadline.approaching": "{deadline_id} due {due_on}: {days_remaining} days left",
    "deadline.passed": "{deadline_id} was due {due_on}",
    "issue.status_changed": "{issue_id}: {before} → {after}",
    "audit.checkpoint": "signed checkpoint at position {position}",
}


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> None:
        return None


def _what(kind: str, data: dict[str, Any]) -> str:
    if kind == "tariff.changed":
        return ", ".join(f"{d} {c['before']:g}% → {c['after']:g}%" for d, c in (data.get("directions") or {}).items())
    template = _SAID.get(kind)
    return template.format_map(_Fields(data)) if template else ""


def _event_title(client: httpx.Client, data: dict[str, Any]) -> str:
    """The event's display title, read from Parley (the message itself is thin); empty if it cannot be read."""
    link = (data.get("links") or {}).get("event")
    if not link:
        return ""
    try:
        response = client.get(link, timeout=5)
        return str(response.json()["display"]["title"]) if response.status_code == 200 else ""
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return ""


def _show(client: httpx.Client, received: Received, as_json: bool) -> None:
    clock = utcnow().strftime("%H:%M:%SZ")
    if received.problem is not None:
        err.print(f"{clock} [red]✗ not verified[/red] {escape(received.message_id)}: {escape(received.problem)} (answered 401)")
        return
    if as_json:
        sys.stdout.write(received.body.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()
        return
    try:
        message = msgspec.json.decode(received.body)
        kind, data = str(message["type"]), message.get("data") or {}
    except (msgspec.DecodeError, KeyError, TypeError):
        kind, data = "?", {}
    what = _event_title(client, data) if kind.startswith("event.") else _what(kind, data)
    where = data.get("negotiation_id") or "-"
    position = f"#{data['position']}" if data.get("position") else ""
    console.print(
        f"{clock} [green]✓ verified[/green] [bold]{escape(kind)}[/bold]  {escape(where)} {position}  {escape(what)}"
        f"  [dim]{escape(received.message_id)}[/dim]"
    )


# --- the command ---------------------------------------------------------------------------------------


def listen(
    url: Annotated[str, typer.Option("--url", envvar="PARLEY_URL", help="The served Parley.")] = "http://127.0.0.1:8000",
    key: Annotated[str | None, typer.Option("--key", envvar="PARLEY_KEY", help="An admin key.", show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 to receive on (0: any free port).")] = 0,
    events: Annotated[
        list[str] | None, typer.Option("--events", help="Only these message types, or prefixes ending in '*' (repeatable).")
    ] = None,
    negotiations: Annotated[list[str] | None, typer.Option("--negotiation", help="Only this negotiation (repeatable).")] = None,
    send_test: Annotated[bool, typer.Option("--send-test", help="Ask Parley for a webhook.test message once registered.")] = False,
    count: Annotated[int, typer.Option("--count", min=0, help="Stop after this many verified messages (0: until Ctrl-C).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print each verified message's raw body, one per line.")] = False,
) -> None:
    """Receive a served Parley's webhooks on this machine: register a listener, verify and print each message.

    The webhook is removed when the command stops (Ctrl-C, SIGTERM or --count reached). Parley calls loopback only for such a listener, registered from its own machine.
    """
    say = err if as_json else console  # with --json, standard output carries the messages alone
    inbox: queue.Queue[Received] = queue.Queue()
    secret, webhook_id, removed = "", None, False
    stop = threading.Event()
    try:
        with remote.client(url, key, timeout=30) as client:
            try:
                receiver = _receiver(port, lambda: secret, inbox)
            except OSError as error:
                raise remote.RemoteError(f"cannot listen on 127.0.0.1:{port}: {error}") from None
            threading.Thread(target=receiver.serve_forever, name="webhook-receiver", daemon=True).start()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            here = f"http://127.0.0.1:{receiver.server_address[1]}/"
            try:
                created = _call(client, "POST", "/v1/webhooks", json={
                    "url": here, "listener": True, "event_types": events or [], "negotiations": negotiations or [],
                    "description": f"parley webhooks listen on {here}",
                }).json()
                webhook_id, secret = created["webhook"]["id"], created["secret"]
                say.print(f"Listening on {here} for webhooks from {escape(url)}")
                say.print(f"Registered webhook {webhook_id} ({escape(', '.join(events or []) or 'every message type')})")
                say.print(f"Signing secret (shown once): {secret}")
                say.print("[dim]Each message is verified with it; Ctrl-C removes the webhook and stops.[/dim]")
                if send_test:
                    _call(client, "POST", f"/v1/webhooks/{webhook_id}/test")
                verified = 0
                while not stop.is_set() and not (count and verified >= count):
                    try:
                        received = inbox.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    _show(client, received, as_json)
                    if received.problem is None:
                        verified += 1
            finally:
                receiver.shutdown()
                receiver.server_close()
                if webhook_id is not None:
                    _call(client, "DELETE", f"/v1/webhooks/{webhook_id}")
                    removed = True
                    say.print(f"Removed webhook {webhook_id}")
    except remote.RemoteError as error:
        left = f" (webhook {webhook_id} was not removed: delete it with DELETE /v1/webhooks/{webhook_id})" if webhook_id and not removed else ""
        err.print(f"[red]error:[/red] {escape(str(error))}{escape(left)}")
        raise typer.Exit(1) from None


def register(cli: typer.Typer) -> None:
    """Add `webhooks listen` to the `parley` app."""
    webhooks_cli = typer.Typer(help="The webhooks of a served Parley.", no_args_is_help=True)
    webhooks_cli.command("listen")(listen)
    cli.add_typer(webhooks_cli, name="webhooks")
