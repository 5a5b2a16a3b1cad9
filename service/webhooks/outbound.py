"""Outbound safety for webhooks: which destinations may be called, and the one way to call them.

`check_destination` runs at registration: the URL must be https (plain http only for an
allow-listed host), carry no credentials, name a valid port, and every address its host resolves
to must be globally routable. Loopback, RFC 1918, link-local (cloud metadata), CGNAT, ULA,
multicast, reserved, documentation and benchmarking ranges, and IPv6 forms that embed or tunnel
IPv4 (mapped, translated, compatible, 6to4, NAT64, Teredo) are refused, as are numeric IPv4 spellings that
browsers and `inet_aton` accept but `ipaddress` does not (`2130706433`, `0x7f.1`, `0177.0.0.1`).
Hosts listed in `PARLEY_WEBHOOK_ALLOW_HOSTS` skip the address check and may use http.
`check_listener` is the one exception to the loopback refusal: a webhook registered as a local
listener (`parley webhooks listen`) must be plain http to the literal 127.0.0.1 or [::1], and nothing else.

`post` runs at delivery time, outside any transaction: it resolves and checks the host again (a
name may have been re-pointed at an internal address since registration, i.e. DNS rebinding),
then connects to one of the addresses it just checked — never to the name again — through an
injectable connect hook, while TLS still verifies the certificate against the host name (the
SNI is the name, not the address). Redirects are not followed and count as failures; only a 2xx
is a success. The timeout is a deadline for the whole attempt, not per socket operation.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpcore
import httpx
import msgspec
from httpcore._backends.sync import SyncStream  # httpcore's own plain-socket stream

from events.application import utcnow
from events.errors import ParleyError

__all__ = [
    "Attempt",
    "ConnectHook",
    "Destination",
    "DestinationRefusedError",
    "Resolver",
    "check_destination",
    "check_listener",
    "classify_address",
    "parse_retry_after",
    "post",
    "system_connect",
    "system_resolver",
]

DEFAULT_TIMEOUT = 15.0
RESPONSE_HEAD_BYTES = 2048
USER_AGENT = "parley-webhooks/1"

#: ``(host, port) -> IP address strings``; raising ``OSError`` means "does not resolve".
Resolver = Callable[[str, int], list[str]]
#: ``(ip, port, timeout) -> connected socket``; only ever called with an address already checked.
ConnectHook = Callable[[str, int, float | None], socket.socket]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class DestinationRefusedError(ParleyError):
    """A webhook URL that Parley will not call; `reason` is one sentence naming the address, `field` the request field."""

    def __init__(self, url: str, reason: str, *, field: str = "url") -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.field = field


class Destination(msgspec.Struct, frozen=True, kw_only=True):
    """A checked URL and the addresses (all checked) that a connection may go to."""

    scheme: str
    host: str  # lower-case, IDNA (ASCII) form, no trailing dot; IPv6 without brackets
    port: int
    path: str  # path plus query, percent-encoded, as sent on the request line
    addresses: tuple[str, ...]
    allow_listed: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one POST; `error` is None exactly when the receiver answered 2xx."""

    status: int | None
    latency_ms: float
    response_head: bytes
    retry_after: float | None
    error: str | None
    refused: bool = False  # the destination failed the connect-time check; nothing was sent

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------
# Allow list, resolver, connect hook


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with `socket.getaddrinfo`, TCP only; every address it returns, de-duplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def system_connect(ip: str, port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection((ip, port), timeout)


def _normalise_allow_entry(entry: str) -> str:
    entry = entry.strip().lower()
    if entry.startswith("[") and entry.endswith("]"):
        entry = entry[1:-1]
    entry = entry.removesuffix(".")
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        pass
    try:
        return httpx.URL(scheme="http", host=entry, path="/").raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        return entry


def _is_allow_listed(host: str, allow_hosts: Iterable[str]) -> bool:
    return host in {_normalise_allow_entry(entry) for entry in allow_hosts}


# --------------------------------------------------------------------------------------------
# Address classification

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_SPECIAL_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "in 0.0.0.0/8 ('this network')"),
    (_V4("10.0.0.0/8"), "private (RFC 1918)"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT shared space (RFC 6598)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.169.254/32"), "link-local (cloud metadata)"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private (RFC 1918)"),
    (_V4("192.0.0.0/24"), "reserved for IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation (TEST-NET-1)"),
    (_V4("192.88.99.0/24"), "the deprecated 6to4 relay anycast range"),
    (_V4("192.168.0.0/16"), "private (RFC 1918)"),
    (_V4("198.18.0.0/15"), "benchmarking (RFC 2544)"),
    (_V4("198.51.100.0/24"), "documentation (TEST-NET-2)"),
    (_V4("203.0.113.0/24"), "documentation (TEST-NET-3)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_SPECIAL_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"),
    (_V6("100::/64"), "discard-only (RFC 6666)"),
    (_V6("2001::/32"), "Teredo (IPv4 tunnelling)"),
    (_V6("2001:2::/48"), "benchmarking (RFC 5180)"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("fc00::/7"), "unique local (ULA)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)

_MAPPED = _V6("::ffff:0:0/96")
_COMPATIBLE = _V6("::/96")
_SIXTOFOUR = _V6("2002::/16")
_NAT64 = _V6("64:ff9b::/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")  # IPv4-translated (SIIT, RFC 2765): ::ffff:0:a.b.c.d


def classify_address(address: str | IPAddress) -> str | None:
    """Why Parley refuses to connect to `address` (a phrase such as "loopback"), or None if global.

    IPv6 forms that carry an IPv4 address are judged by that address where it matters.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "an IPv6 address with a zone identifier"
        bare = ipaddress.IPv6Address(int(ip))
        if bare in _MAPPED:
            v4 = ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF)
            inner = classify_address(v4)
            return f"an IPv4-mapped IPv6 address (of {v4}{', which is ' + inner if inner else ''})"
        if bare in _TRANSLATED:
            v4 = ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF)
            inner = classify_address(v4)
            return f"an IPv4-translated IPv6 address (of {v4}{', which is ' + inner if inner else ''})"
        if bare in _COMPATIBLE and int(bare) > 1:
            v4 = ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF)
            return f"an IPv4-compatible IPv6 address (deprecated; embeds {v4})"
        if bare in _SIXTOFOUR:
            v4 = ipaddress.IPv4Address((int(bare) >> 80) & 0xFFFFFFFF)
            inner = classify_address(v4)
            if inner:
                return f"a 6to4 address embedding {v4}, which is {inner}"
        if bare in _NAT64:
            v4 = ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF)
            inner = classify_address(v4)
            if inner:
                return f"a NAT64 address embedding {v4}, which is {inner}"
        for network, why in _SPECIAL_V6:
            if bare in network:
                return why
        return None if bare.is_global else "not a globally routable address"
    for network4, why in _SPECIAL_V4:
        if ip in network4:
            return why
    return None if ip.is_global else "not a globally routable address"


# --------------------------------------------------------------------------------------------
# URL checks

_NUMBER_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def _parse_legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse a host the way `inet_aton` and the WHATWG URL standard do, or None if it isn't one.

    Accepts 1–4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
    remaining bytes, so "2130706433", "0x7f.1" and "017700000001" are all 127.0.0.1.
    """
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if not _NUMBER_LABEL.fullmatch(part):
            return None
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_host(url: str, raw_host: str) -> tuple[str, IPAddress | None]:
    """The canonical host and, for an IP literal, its address; refuses anything ambiguous."""
    if not raw_host:
        raise DestinationRefusedError(url, "the URL has no host")
    if ":" in raw_host:  # httpx only yields a colon for a bracketed IPv6 literal
        if "%" in raw_host:
            raise DestinationRefusedError(
                url, f"[{raw_host}] carries an IPv6 zone identifier, which is not allowed"
            )
        try:
            v6 = ipaddress.IPv6Address(raw_host)
        except ValueError:
            reason = f"[{raw_host}] is not a valid IPv6 address"
            raise DestinationRefusedError(url, reason) from None
        return str(v6), v6
    host = raw_host.lower().removesuffix(".")
    labels = host.split(".")
    if _NUMBER_LABEL.fullmatch(labels[-1] or "x"):
        # The last label is numeric, so every URL parser that matters reads the host as IPv4.
        v4 = _parse_legacy_ipv4(host)
        if v4 is None:
            raise DestinationRefusedError(url, f"{raw_host} is not a valid IPv4 address")
        if str(v4) != host:
            why = classify_address(v4)
            detail = f", which is {why}" if why else "; write IPv4 addresses as a plain dotted quad"
            raise DestinationRefusedError(
                url, f"{raw_host} is a non-canonical spelling of {v4}{detail}"
            )
        return host, v4
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise DestinationRefusedError(url, f"{raw_host!r} is not a valid host name")
    return host, None


def _refuse_reason(host: str, literal: IPAddress | None, address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{host} resolves to {address!r}, which is not an IP address"
    why = classify_address(ip)
    if why is None:
        return None
    if literal is not None:
        return f"{address} is {why}"
    return f"{host} resolves to {address}, which is {why}"


def check_destination(
    url: str,
    *,
    allow_hosts: Iterable[str],
    resolver: Resolver = system_resolver,
) -> Destination:
    """Check a webhook URL and resolve its host; raises `DestinationRefusedError` when unsafe.

    Every resolved address must pass (one internal address among public ones is enough to
    refuse), unless the host itself is allow-listed.
    """
    if not isinstance(url, str) or _FORBIDDEN_URL_CHARS.search(url):
        raise DestinationRefusedError(
            str(url), "the URL contains whitespace, control characters or a backslash"
        )
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as error:
        # httpx rejects some IPv4 spellings (e.g. "0177.0.0.1"); name the address if we can.
        try:
            loose_host = urllib.parse.urlsplit(url).hostname
        except ValueError:
            loose_host = None
        if loose_host and ":" not in loose_host:
            _parse_host(url, loose_host)
        raise DestinationRefusedError(url, f"the URL cannot be parsed ({error})") from None

    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        raise DestinationRefusedError(url, f"the scheme must be https, not {scheme or 'missing'}")
    authority = re.split(r"[/?#]", url.split("://", 1)[-1], maxsplit=1)[0]
    if parsed.userinfo or "@" in authority:
        raise DestinationRefusedError(url, "the URL must not carry a user name or password")

    host, literal = _parse_host(url, raw_host)
    allow_listed = _is_allow_listed(host, allow_hosts)
    if scheme == "http" and not allow_listed:
        raise DestinationRefusedError(
            url, f"plain http is only allowed for allow-listed hosts, and {host} is not one"
        )

    port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise DestinationRefusedError(url, f"port {port} is outside 1-65535")

    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(dict.fromkeys(resolver(host, port)))
        except (OSError, UnicodeError) as error:
            raise DestinationRefusedError(url, f"{host} does not resolve ({error})") from None
        if not addresses:
            raise DestinationRefusedError(url, f"{host} does not resolve to any address")

    if not allow_listed:
        for address in addresses:
            reason = _refuse_reason(host, literal, address)
            if reason is not None:
                raise DestinationRefusedError(url, reason)
    else:
        for address in addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise DestinationRefusedError(
                    url, f"{host} resolves to {address!r}, which is not an IP address"
                ) from None

    return Destination(
        scheme=scheme,
        host=host,
        port=port,
        path=parsed.raw_path.decode("ascii"),
        addresses=tuple(addresses),
        allow_listed=allow_listed,
    )


LISTENER_HOSTS = ("127.0.0.1", "::1")


def check_listener(url: str) -> Destination:
    """Check a local listener's URL: plain http to the literal 127.0.0.1 or [::1], no name, no other address.

    A literal address is never resolved, so nothing can re-point it; every other check of
    `check_destination` (credentials, port, spelling) still applies.
    """
    shape = "a listener's URL must be http://127.0.0.1:<port>/... or http://[::1]:<port>/..."
    if not isinstance(url, str) or _FORBIDDEN_URL_CHARS.search(url):
        raise DestinationRefusedError(str(url), "the URL contains whitespace, control characters or a backslash")
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as error:
        raise DestinationRefusedError(url, f"the URL cannot be parsed ({error}); {shape}") from None
    if parsed.scheme != "http":
        raise DestinationRefusedError(url, f"{shape}; this one is {parsed.scheme or 'without a scheme'}")
    host, literal = _parse_host(url, raw_host)
    if literal is None or str(literal) not in LISTENER_HOSTS:
        raise DestinationRefusedError(url, f"{shape}; {raw_host or 'no host'} is not one of them")
    return check_destination(url, allow_hosts=(host,))


# --------------------------------------------------------------------------------------------
# Sending


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write stops at one deadline for the whole attempt."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _budget(self, timeout: float | None, expired: type[Exception]) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise expired("the attempt's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        budget = self._budget(timeout, httpcore.ConnectTimeout)
        inner = self._inner.start_tls(ssl_context, server_hostname, budget)
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects only to the destination's checked addresses, whatever name httpcore asks for."""

    def __init__(self, destination: Destination, connect: ConnectHook, deadline: float) -> None:
        self._destination = destination
        self._connect = connect
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wanted = self._destination
        if host.lower() != wanted.host or port != wanted.port:
            # Never happens for the request `post` builds; refuse rather than connect elsewhere.
            raise DestinationRefusedError(
                f"{host}:{port}", f"{host}:{port} is not the checked destination {wanted.url}"
            )
        failure: Exception = httpcore.ConnectError(f"no address to connect to for {host}")
        for address in wanted.addresses:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise httpcore.ConnectTimeout(f"timed out connecting to {host}")
            budget = remaining if timeout is None else min(timeout, remaining)
            try:
                sock = self._connect(address, port, budget)
            except TimeoutError as error:
                failure = httpcore.ConnectTimeout(f"{address}:{port}: {error or 'timed out'}")
                continue
            except OSError as error:
                failure = httpcore.ConnectError(f"{address}:{port}: {error}")
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
            return _DeadlineStream(SyncStream(sock), self._deadline)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks never connect to unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_default_ssl_context: ssl.SSLContext | None = None


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The verifying context (certifi roots, hostname checks), built once; or the caller's own."""
    global _default_ssl_context
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is not True:
        raise ValueError("webhook deliveries always verify certificates")
    if _default_ssl_context is None:
        _default_ssl_context = httpx.create_ssl_context(verify=True, trust_env=False)
    return _default_ssl_context


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport (exception mapping, streaming) over a pool using `_PinnedBackend`."""

    def __init__(self, backend: _PinnedBackend, verify: ssl.SSLContext | bool) -> None:
        # Deliberately not calling super().__init__: it only builds the pool replaced here.
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(verify),
            max_connections=1,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


def post(
    destination: Destination,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_hosts: Iterable[str],
    resolver: Resolver = system_resolver,
    timeout: float = DEFAULT_TIMEOUT,
    connect: ConnectHook | None = None,
    verify: ssl.SSLContext | bool = True,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Attempt:
    """POST `body` (exactly these bytes) to `destination` and report what happened.

    Call it outside any database transaction. The host is resolved and checked again first; a
    refused destination yields ``Attempt(refused=True)`` without opening a connection. Network
    failures, timeouts, redirects and non-2xx answers are reported in `error`, never raised.
    `verify` is for tests that run a TLS server with their own certificate authority.
    """
    for name in headers:
        if name.lower() in _MANAGED_HEADERS:
            raise ValueError(f"header {name!r} is set by the transport and must not be supplied")
    start = time.monotonic()
    deadline = start + timeout

    def elapsed_ms() -> float:
        return round((time.monotonic() - start) * 1000.0, 3)

    def failed(error: str, *, refused: bool = False) -> Attempt:
        return Attempt(
            status=None,
            latency_ms=elapsed_ms(),
            response_head=b"",
            retry_after=None,
            error=error,
            refused=refused,
        )

    try:
        checked = check_destination(destination.url, allow_hosts=allow_hosts, resolver=resolver)
    except DestinationRefusedError as error:
        return failed(f"destination refused: {error.reason}", refused=True)

    backend = _PinnedBackend(checked, connect or system_connect, deadline)
    request_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    try:
        with (
            httpx.Client(
                transport=_PinnedTransport(backend, verify),
                follow_redirects=False,
                timeout=timeout,
                trust_env=False,
            ) as client,
            client.stream("POST", checked.url, content=body, headers=request_headers) as response,
        ):
            head = bytearray()
            for chunk in response.iter_raw():
                head += chunk
                if len(head) >= RESPONSE_HEAD_BYTES:
                    break
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=clock())
            location = response.headers.get("Location")
    except DestinationRefusedError as error:
        return failed(f"destination refused: {error.reason}", refused=True)
    except httpx.TimeoutException:
        return failed(f"timed out after {timeout:g} s")
    except httpx.ConnectError as error:
        return failed(f"connection failed: {error}")
    except httpx.HTTPError as error:
        return failed(f"{type(error).__name__}: {error}")

    if 200 <= status < 300:
        error_text = None
    elif 300 <= status < 400:
        error_text = f"HTTP {status} redirect not followed" + (
            f" (Location: {location[:200]})" if location else ""
        )
    else:
        error_text = f"HTTP {status}"
    return Attempt(
        status=status,
        latency_ms=elapsed_ms(),
        response_head=bytes(head[:RESPONSE_HEAD_BYTES]),
        retry_after=retry_after,
        error=error_text,
    )
