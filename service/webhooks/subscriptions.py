"""Webhook subscriptions: destinations, filters and signing secrets (encrypted at rest)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import threading
import time
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.errors import ParleyError
from service.webhooks.store import WebhookTables, iso


class WebhookNotFoundError(ParleyError):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"no webhook {webhook_id!r}")
        self.webhook_id = webhook_id


class SecretUnreadableError(ParleyError):
    """A secret sealed under another key: the server's signing key was changed after the webhook was created."""

    def __init__(self) -> None:
        super().__init__("the signing secret was sealed under another server signing key")


class SecretBox:
    """AES-GCM with a key the server holds, so secrets can sign but are not readable from the database."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext.encode(), b"parley-webhook")).decode()

    def open(self, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], b"parley-webhook").decode()
        except InvalidTag:
            raise SecretUnreadableError() from None


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    negotiations: list[str]
    description: str | None
    status: str
    created_at: str
    created_by: str
    last_success_at: str | None = None
    failing_since: str | None = None
    disabled_reason: str | None = None
    listener: bool = False


_PUBLIC = ("id, url, event_types, negotiations, description, status, created_at, created_by, last_success_at, failing_since, "
           "disabled_reason, listener")


def _public(row: dict[str, Any]) -> Subscription:
    return Subscription(
        **{**{k: row[k] for k in _PUBLIC.split(", ")},
           "event_types": msgspec.json.decode(row["event_types"]), "negotiations": msgspec.json.decode(row["negotiations"]),
           "listener": bool(row["listener"])}
    )


class Subscriptions:
    def __init__(self, tables: WebhookTables, box: SecretBox) -> None:
        self.tables = tables
        self.box = box
        self._cache: tuple[float, list[dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def _forget(self) -> None:
        with self._lock:
            self._cache = None

    def create(self, *, url: str, event_types: list[str], negotiations: list[str], description: str | None, created_by: str,
               now: dt.datetime, listener: bool = False) -> tuple[Subscription, str]:
        secret = new_secret()
        webhook_id = "wh_" + secrets.token_hex(8)
        self.tables.run(
            "INSERT INTO parley_webhooks (id, url, event_types, negotiations, description, status, secret, created_at, created_by, "
            "listener) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
            (webhook_id, url, msgspec.json.encode(event_types).decode(), msgspec.json.encode(negotiations).decode(),
             description, self.box.seal(secret), iso(now), created_by, int(listener)),
            commit=True,
        )
        self._forget()
        return self.get(webhook_id), secret

    def row(self, webhook_id: str) -> dict[str, Any]:
        rows = self.tables.run("SELECT * FROM parley_webhooks WHERE id = ?", (webhook_id,))
        if not rows:
            raise WebhookNotFoundError(webhook_id)
        return rows[0]

    def get(self, webhook_id: str) -> Subscription:
        return _public(self.row(webhook_id))

    def list(self, *, after: str = "", limit: int = 100) -> list[Subscription]:
        rows = self.tables.run(f"SELECT {_PUBLIC} FROM parley_webhooks WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [_public(r) for r in rows]

    def update(self, webhook_id: str, **changes: Any) -> Subscription:
        self.row(webhook_id)
        columns = {k: (msgspec.json.encode(v).decode() if k in ("event_types", "negotiations") else v) for k, v in changes.items()}
        if columns:
            assignments = ", ".join(f"{k} = ?" for k in columns)
            self.tables.run(f"UPDATE parley_webhooks SET {assignments} WHERE id = ?", (*columns.values(), webhook_id), commit=True)
        self._forget()
        return self.get(webhook_id)

    def delete(self, webhook_id: str) -> None:
        self.row(webhook_id)
        self.tables.run("DELETE FROM parley_outbox WHERE subscription_id = ? AND status IN ('pending', 'delivering')", (webhook_id,), commit=True)
        self.tables.run("DELETE FROM parley_webhooks WHERE id = ?", (webhook_id,), commit=True)
        self._forget()

    def rotate(self, webhook_id: str, *, grace_seconds: int, now: dt.datetime) -> str:
        row = self.row(webhook_id)
        secret = new_secret()
        self.tables.run(
            "UPDATE parley_webhooks SET secret = ?, previous_secret = ?, previous_until = ? WHERE id = ?",
            (self.box.seal(secret), row["secret"], iso(now + dt.timedelta(seconds=grace_seconds)), webhook_id),
            commit=True,
        )
        self._forget()
        return secret

    def signing_secrets(self, row: dict[str, Any], now: dt.datetime) -> list[str]:
        """The current secret, and the previous one while its grace period lasts (and this server can read it)."""
        found = [self.box.open(row["secret"])]
        if row.get("previous_secret") and row.get("previous_until") and iso(now) < row["previous_until"]:
            try:
                found.append(self.box.open(row["previous_secret"]))
            except SecretUnreadableError:
                pass  # rotated away from a secret sealed under an earlier signing key: sign with the new one alone
        return found

    def all(self) -> list[dict[str, Any]]:
        """Every subscription with its filters decoded; cached for a second (the relay asks per batch)."""
        with self._lock:
            if self._cache is not None and time.monotonic() - self._cache[0] < 1.0:
                return self._cache[1]
        rows = self.tables.run("SELECT * FROM parley_webhooks ORDER BY id")
        for row in rows:
            row["event_types"] = msgspec.json.decode(row["event_types"])
            row["negotiations"] = msgspec.json.decode(row["negotiations"])
        with self._lock:
            self._cache = (time.monotonic(), rows)
        return rows
