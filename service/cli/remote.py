"""The CLI talking to a served Parley (`--url`, `--key`): one client, and every way it can fail as one line naming the fix."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

TIMEOUT_SECONDS = 60.0
CACHE_BYTES = 64 * 1024 * 1024  # the CLI's answer cache on disk (`cache_path`), least recently used first out


class RemoteError(Exception):
    """A request to a served Parley that did not succeed, said in one line with what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _detail(response: httpx.Response) -> str:
    """What the server said: its problem detail (RFC 9457), else its status text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        said = body.get("detail") or body.get("title")
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("field"):
            said = f"{said} ({errors[0]['field']}: {errors[0].get('message', '')})"
        if said:
            return str(said)
    return response.reason_phrase or "no detail"


def refused(response: httpx.Response) -> RemoteError:
    """A non-2xx answer as one line: what the status means here, what the server said, and what to do."""
    status, detail = response.status_code, _detail(response)
    request_id = response.headers.get("X-Request-ID")
    if status == 401:
        return RemoteError(f"the server refused the key (401 unknown or revoked): {detail}; pass a valid --key or set PARLEY_KEY")
    if status == 403:
        return RemoteError(f"the key may not do this (403): {detail}; use a key with a reporter or admin role")
    if status == 404:
        return RemoteError(f"not found (404): {detail}; check the id and that --url points at a Parley server")
    if status == 429:
        wait = response.headers.get("Retry-After")
        return RemoteError(f"the server is rate limiting this key (429): {detail}; try again" + (f" in {wait} s" if wait else " later"))
    if status == 503:
        wait = response.headers.get("Retry-After")
        return RemoteError(f"the server cannot answer now (503): {detail}; try again" + (f" in {wait} s" if wait else " later"))
    if status >= 500:
        where = f" (request id {request_id})" if request_id else ""
        return RemoteError(f"the server failed ({status}): {detail}; its log says why{where}")
    return RemoteError(f"the server refused the request ({status}): {detail}")


def _checked(url: str, key: str | None) -> tuple[str, str]:
    if not url.startswith(("http://", "https://")):
        raise RemoteError(f"--url {url!r} is not a server address: give one like http://127.0.0.1:8000")
    if not key or not key.strip():
        raise RemoteError("no access key: pass --key or set PARLEY_KEY")
    key = key.strip()
    if not key.isascii() or not key.isprintable() or " " in key:
        raise RemoteError("the access key holds characters no header can carry: pass it exactly as it was printed (pk_...)")
    return url.rstrip("/"), key


def cache_path() -> Path | None:
    """Where the CLI keeps the answers it read from servers: $PARLEY_CLI_CACHE, else the user's cache directory.

    `PARLEY_CLI_CACHE=off` keeps nothing.
    """
    configured = os.environ.get("PARLEY_CLI_CACHE", "")
    if configured.lower() in ("off", "0", "none"):
        return None
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "parley" / "http-cache.sqlite"


def _cached_transport(path: Path) -> httpx.BaseTransport:
    """A private HTTP cache (RFC 9111, hishel) in an SQLite file only this user can read: an answer read before
    is asked again with If-None-Match (a 304 costs no body), a settled past (`immutable`) is not asked again."""
    from hishel import CacheOptions, SqliteStorage
    from hishel.httpx import CacheTransport

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    storage = SqliteStorage(database_path=str(path), max_size=CACHE_BYTES)
    return CacheTransport(httpx.HTTPTransport(), storage=storage, rfc=CacheOptions(shared=False))


@contextmanager
def client(url: str, key: str | None, timeout: float = TIMEOUT_SECONDS, *, cached: bool = False) -> Iterator[httpx.Client]:
    """An HTTP client for a served Parley with the key; any failure inside the block becomes a RemoteError.

    `cached`: GETs go through the CLI's private answer cache (`cache_path`), when there is one.
    """
    base, secret = _checked(url, key)
    where = cache_path() if cached else None
    transport = _cached_transport(where) if where is not None else None
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=timeout, transport=transport) as http:
            yield http
    except httpx.HTTPStatusError as error:
        raise refused(error.response) from None
    except httpx.ConnectError:
        raise RemoteError(f"cannot reach {base}: is `parley serve` running there? (check --url)") from None
    except httpx.TimeoutException:
        raise RemoteError(f"{base} did not answer within {timeout:g} s: is the server overloaded, or --url wrong?") from None
    except httpx.HTTPError as error:
        raise RemoteError(f"cannot talk to {base}: {type(error).__name__}: {error}") from None
