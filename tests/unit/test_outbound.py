"""Outbound webhook safety: the SSRF table, and real POSTs to a tiny server on 127.0.0.1.

No test here may open a connection anywhere but 127.0.0.0/8: resolvers are fakes, the connect
hook records every attempt, and an autouse guard fails any socket connect outside loopback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.settings import Settings
from service.webhooks.outbound import (
    Attempt,
    Destination,
    DestinationRefusedError,
    check_destination,
    classify_address,
    parse_retry_after,
    post,
)

PUBLIC = "93.184.216.34"  # a global address; never connected to (the guard would fail the test)
LOCAL = frozenset({"127.0.0.1"})
NOBODY = frozenset[str]()


# --------------------------------------------------------------------------------------------
# Guards and fakes


@pytest.fixture(autouse=True)
def only_loopback_connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail any test that makes a socket connect outside 127.0.0.0/8."""
    seen: list[object] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else str(address)
        if ipaddress.ip_address(host) not in ipaddress.ip_network("127.0.0.0/8"):
            pytest.fail(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: pytest.fail(f"connect_ex {a}"))
    return seen


@dataclass
class Connections:
    """A connect hook that records every attempt and only ever dials 127.0.0.0/8."""

    allowed: bool = True
    attempts: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, ip: str, port: int, timeout: float | None) -> socket.socket:
        self.attempts.append((ip, port))
        if not self.allowed:
            pytest.fail(f"connect hook called for {ip}:{port} although nothing may connect")
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8"), ip
        return socket.create_connection((ip, port), timeout)


def fixed(*addresses: str) -> Callable[[str, int], list[str]]:
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def sequence(*answers: list[str]) -> Callable[[str, int], list[str]]:
    """A resolver whose answer changes on each call (the last answer repeats): DNS rebinding."""
    remaining = list(answers)

    def resolve(host: str, port: int) -> list[str]:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return resolve


def no_dns(host: str, port: int) -> list[str]:
    pytest.fail(f"resolver called for {host}")


# --------------------------------------------------------------------------------------------
# SSRF table

SPECIAL_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "RFC 1918"),
    ("10.255.255.255", "RFC 1918"),
    ("172.16.0.1", "RFC 1918"),
    ("172.31.255.254", "RFC 1918"),
    ("192.168.1.1", "RFC 1918"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "carrier-grade NAT"),  # Alibaba Cloud metadata
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.254", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "zone identifier"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique local"),
    ("fd00:ec2::254", "unique local"),  # AWS IMDS over IPv6
    ("ff02::1", "multicast"),
    ("ff05::1:3", "multicast"),
    ("::ffff:127.0.0.1", "127.0.0.1, which is loopback"),
    ("::ffff:10.0.0.1", "10.0.0.1, which is private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("::ffff:0:a9fe:a9fe", "IPv4-translated IPv6 address (of 169.254.169.254, which is link-local (cloud metadata)"),
    ("::ffff:0:7f00:1", "IPv4-translated IPv6 address (of 127.0.0.1, which is loopback"),
    ("::ffff:0:808:808", "IPv4-translated"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("2002:7f00:1::1", "6to4 address embedding 127.0.0.1"),
    ("2002:a00:1::1", "6to4 address embedding 10.0.0.1"),
    ("2002:a9fe:a9fe::", "cloud metadata"),
    ("64:ff9b::7f00:1", "NAT64 address embedding 127.0.0.1"),
    ("64:ff9b::a00:1", "NAT64 address embedding 10.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
]


@pytest.mark.parametrize(
    ("address", "why"), SPECIAL_ADDRESSES, ids=[a for a, _ in SPECIAL_ADDRESSES]
)
def test_a_name_resolving_to_a_special_address_is_refused_at_registration(
    address: str, why: str
) -> None:
    with pytest.raises(DestinationRefusedError) as refused:
        check_destination(
            "https://hooks.example.com/in", allow_hosts=NOBODY, resolver=fixed(address)
        )
    assert address in refused.value.reason
    assert why in refused.value.reason
    assert refused.value.reason.startswith("hooks.example.com resolves to ")
    assert refused.value.url == "https://hooks.example.com/in"


@pytest.mark.parametrize(
    ("address", "why"), SPECIAL_ADDRESSES, ids=[a for a, _ in SPECIAL_ADDRESSES]
)
def test_a_name_rebound_to_a_special_address_is_refused_at_connect_time(
    address: str, why: str
) -> None:
    resolver = sequence([PUBLIC], [address])
    destination = check_destination(
        "https://hooks.example.com/in", allow_hosts=NOBODY, resolver=resolver
    )
    assert destination.addresses == (PUBLIC,)
    connections = Connections(allowed=False)

    attempt = post(
        destination, b"{}", {}, allow_hosts=NOBODY, resolver=resolver, connect=connections
    )

    assert attempt.refused and attempt.status is None
    assert attempt.error is not None and why in attempt.error and address in attempt.error
    assert connections.attempts == []


def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(DestinationRefusedError, match="10.0.0.7"):
        check_destination(
            "https://hooks.example.com/",
            allow_hosts=NOBODY,
            resolver=fixed(PUBLIC, "2606:2800:220:1:248:1893:25c8:1946", "10.0.0.7"),
        )


LITERAL_URLS = [
    ("https://127.0.0.1/", "127.0.0.1 is loopback"),
    ("https://127.0.0.1./", "127.0.0.1 is loopback"),
    ("https://127.1/", "non-canonical spelling of 127.0.0.1"),
    ("http://2130706433/", "non-canonical spelling of 127.0.0.1"),
    ("https://2130706433/", "non-canonical spelling of 127.0.0.1"),
    ("http://0x7f.1/", "non-canonical spelling of 127.0.0.1"),
    ("https://0x7f000001/", "non-canonical spelling of 127.0.0.1"),
    ("https://0X7F.0.0.1/", "non-canonical spelling of 127.0.0.1"),
    ("http://017700000001/", "non-canonical spelling of 127.0.0.1"),
    ("https://0177.0.0.1/", "non-canonical spelling of 127.0.0.1"),
    ("https://127.000.000.001/", "non-canonical spelling of 127.0.0.1"),
    ("https://0251.0376.0251.0376/", "cloud metadata"),
    ("https://2852039166/", "non-canonical spelling of 169.254.169.254"),
    ("https://0/", "non-canonical spelling of 0.0.0.0"),
    ("https://0.0.0.0/", "0.0.0.0 is unspecified"),
    ("https://10.0.0.1:8443/", "10.0.0.1 is private (RFC 1918)"),
    ("https://192.168.0.1/", "private (RFC 1918)"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local (cloud metadata)"),
    ("https://100.100.100.200/", "carrier-grade NAT"),
    ("https://[::1]/", ":1 is loopback"),
    ("https://[::]/", "unspecified"),
    ("https://[0:0:0:0:0:0:0:1]:8443/", "loopback"),
    ("https://[::ffff:127.0.0.1]/", "IPv4-mapped IPv6 address (of 127.0.0.1"),
    ("https://[::ffff:7f00:1]/", "IPv4-mapped IPv6 address (of 127.0.0.1"),
    ("https://[0:0:0:0:0:ffff:a9fe:a9fe]/", "cloud metadata"),
    ("https://[::ffff:0:a9fe:a9fe]/", "IPv4-translated IPv6 address (of 169.254.169.254"),
    ("https://[fe80::1%25eth0]/", "zone identifier"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fd00:ec2::254]/", "unique local"),
    ("https://[2002:7f00:1::]/", "6to4 address embedding 127.0.0.1"),
    ("https://[64:ff9b::169.254.169.254]/", "cloud metadata"),
    ("https://1.2.3/", "non-canonical spelling of 1.2.0.3"),
    ("https://0x08080808/", "non-canonical spelling of 8.8.8.8"),
    ("https://foo.0x10/", "not a valid IPv4 address"),
    ("https://1.2.3.4.5/", "not a valid IPv4 address"),
    ("https://256.1.1.1/", "not a valid IPv4 address"),
    ("https://09.1.1.1/", "not a valid IPv4 address"),
]


@pytest.mark.parametrize(("url", "why"), LITERAL_URLS, ids=[u for u, _ in LITERAL_URLS])
def test_special_address_literals_in_any_spelling_are_refused_without_dns(
    url: str, why: str
) -> None:
    with pytest.raises(DestinationRefusedError) as refused:
        check_destination(url, allow_hosts=NOBODY, resolver=no_dns)
    assert why in refused.value.reason


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/", "plain http is only allowed for allow-listed hosts"),
        ("http://8.8.8.8/", "plain http"),
        ("ftp://hooks.example.com/", "scheme must be https"),
        ("file:///etc/passwd", "scheme must be https"),
        ("gopher://hooks.example.com/", "scheme must be https"),
        ("hooks.example.com/in", "scheme must be https"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://user@hooks.example.com/", "user name or password"),
        ("https://@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com\\@127.0.0.1/", "backslash"),
        ("https://hooks.example.com /", "whitespace"),
        ("https://hooks.example.com\t/", "whitespace"),
        ("https://hooks.example.com:0/", "port 0 is outside"),
        ("https://hooks.example.com:65536/", "port 65536 is outside"),
        ("https:///in", "no host"),
        ("https://hooks..example.com/", "not a valid host name"),
        ("https://hooks.example.com../", "not a valid host name"),
        ("https://hooks%2eexample.com/", "not a valid host name"),
        ("https://[::1/", "cannot be parsed"),
        ("https://[not-v6]/", "cannot be parsed"),
    ],
)
def test_malformed_or_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(DestinationRefusedError) as refused:
        check_destination(url, allow_hosts=NOBODY, resolver=fixed(PUBLIC))
    assert why in refused.value.reason, refused.value.reason


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(DestinationRefusedError, match="does not resolve"):
        check_destination("https://nowhere.example/", allow_hosts=NOBODY, resolver=broken)
    with pytest.raises(DestinationRefusedError, match="does not resolve to any address"):
        check_destination("https://nowhere.example/", allow_hosts=NOBODY, resolver=fixed())
    with pytest.raises(DestinationRefusedError, match="not an IP address"):
        check_destination("https://odd.example/", allow_hosts=NOBODY, resolver=fixed("bogus"))


def test_a_public_destination_is_accepted_and_normalised() -> None:
    resolver = fixed(PUBLIC, "2606:2800:220:1:248:1893:25c8:1946", PUBLIC)
    destination = check_destination(
        "HTTPS://Hooks.Example.COM.:8443/in/box?tenant=a%20b#frag",
        allow_hosts=NOBODY,
        resolver=resolver,
    )
    assert destination == Destination(
        scheme="https",
        host="hooks.example.com",
        port=8443,
        path="/in/box?tenant=a%20b",
        addresses=(PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"),
        allow_listed=False,
    )
    assert destination.url == "https://hooks.example.com:8443/in/box?tenant=a%20b"
    assert resolver.calls == ["hooks.example.com"]  # type: ignore[attr-defined]
    literal = check_destination("https://8.8.8.8/x", allow_hosts=NOBODY, resolver=no_dns)
    assert literal.addresses == ("8.8.8.8",) and literal.port == 443
    idn = check_destination("https://bücher.example/", allow_hosts=NOBODY, resolver=fixed(PUBLIC))
    assert idn.host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8080/hook", {"127.0.0.1"}),
        ("https://127.0.0.1/hook", {"127.0.0.1"}),
        ("http://LOCALHOST./hook", {"localhost"}),
        ("http://hooks.internal/hook", {"Hooks.Internal."}),
        ("http://[::1]:9000/", {"[::1]"}),
        ("http://[0::1]:9000/", {"::1"}),
    ],
)
def test_allow_listed_hosts_may_use_http_and_internal_addresses(url: str, allow: set[str]) -> None:
    destination = check_destination(url, allow_hosts=frozenset(allow), resolver=fixed("127.0.0.1"))
    assert destination.allow_listed


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # allow-listing is exact: other spellings of 127.0.0.1 stay refused
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://127.0.0.2/",
        "http://localhost/",
    ],
)
def test_the_allow_list_matches_the_host_exactly(url: str) -> None:
    with pytest.raises(DestinationRefusedError):
        check_destination(url, allow_hosts=LOCAL, resolver=fixed("127.0.0.1"))


def test_allow_hosts_come_from_the_settings_and_match_normalised() -> None:
    env = {"PARLEY_WEBHOOK_ALLOW_HOSTS": " 127.0.0.1, Hooks.Internal.  [::1]"}
    allowed = Settings.from_env(environ=env).allow_hosts
    assert len(allowed) == 3
    check_destination("http://hooks.internal/", allow_hosts=allowed, resolver=fixed("10.0.0.7"))
    check_destination("http://[::1]:8080/", allow_hosts=allowed, resolver=fixed("::1"))
    check_destination("http://127.0.0.1/", allow_hosts=allowed, resolver=fixed("127.0.0.1"))
    assert Settings().allow_hosts == frozenset()
    with pytest.raises(DestinationRefusedError):
        check_destination("http://127.0.0.1/", allow_hosts=Settings().allow_hosts, resolver=fixed("127.0.0.1"))


@pytest.mark.parametrize(
    ("address", "expected"),
    [("8.8.8.8", None), ("2606:4700:4700::1111", None), ("64:ff9b::808:808", None)],
)
def test_global_addresses_are_not_classified(address: str, expected: None) -> None:
    assert classify_address(address) is expected


# --------------------------------------------------------------------------------------------
# Real POSTs to a server on 127.0.0.1


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Server:
    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.received: list[Received] = []
        self.release = threading.Event()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.received]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            server.received.append(
                Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            route = self.path.split("?")[0]
            if route == "/ok":
                self._answer(200, b'{"received": true}', Content_Type="application/json")
            elif route == "/accepted":
                self._answer(202)
            elif route == "/big":
                self._answer(200, b"x" * 10_000)
            elif route == "/redirect":
                self._answer(301, Location=server.url("/target"))
            elif route == "/target":
                self._answer(200, b"followed")
            elif route == "/throttled":
                self._answer(429, b"slow down", Retry_After="120")
            elif route == "/throttled-date":
                later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
                self._answer(429, Retry_After=later.strftime("%a, %d %b %Y %H:%M:%S GMT"))
            elif route == "/unavailable":
                self._answer(503, b"down for maintenance")
            elif route == "/slow":
                server.release.wait(5)
                self._answer(200)
            elif route == "/drip":  # each byte well inside the timeout; the whole far beyond it
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    if server.release.wait(0.1):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            else:
                self._answer(404)

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    instance = Server(httpd)
    httpd.RequestHandlerClass = _handler(instance)
    httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield instance
    instance.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def send(
    server: Server, path: str, body: bytes = b"{}", **kwargs: object
) -> tuple[Attempt, Connections]:
    connections = Connections()
    destination = check_destination(server.url(path), allow_hosts=LOCAL, resolver=no_dns)
    options: dict[str, object] = {"allow_hosts": LOCAL, "resolver": no_dns, "connect": connections}
    options.update(kwargs)
    attempt = post(destination, body, {"Content-Type": "application/json"}, **options)  # type: ignore[arg-type]
    return attempt, connections


def test_the_receiver_gets_exactly_the_bytes_and_headers_sent(server: Server) -> None:
    body = b'{"id":"msg-1","type":"negotiation.opened","note":"caf\xc3\xa9 \\u00e9"}\n'
    destination = check_destination(
        server.url("/ok?tenant=a%20b"), allow_hosts=LOCAL, resolver=no_dns
    )
    connections = Connections()
    headers = {
        "Content-Type": "application/json",
        "X-Parley-Signature": "t=1700000000,v1=abc123",
        "X-Parley-Message-Id": "msg-1",
    }

    attempt = post(
        destination, body, headers, allow_hosts=LOCAL, resolver=no_dns, connect=connections
    )

    assert attempt.error is None and attempt.ok and not attempt.refused
    assert attempt.status == 200
    assert attempt.response_head == b'{"received": true}'
    assert attempt.retry_after is None
    assert attempt.latency_ms > 0
    assert connections.attempts == [("127.0.0.1", server.port)]
    [received] = server.received
    assert received.method == "POST"
    assert received.path == "/ok?tenant=a%20b"
    assert received.body == body
    assert received.headers["content-length"] == str(len(body))
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-parley-signature"] == "t=1700000000,v1=abc123"
    assert received.headers["x-parley-message-id"] == "msg-1"
    assert received.headers["host"] == f"127.0.0.1:{server.port}"
    assert received.headers["accept-encoding"] == "identity"
    assert received.headers["user-agent"].startswith("parley-webhooks/")


def test_any_2xx_is_success(server: Server) -> None:
    attempt, _ = send(server, "/accepted")
    assert attempt.status == 202 and attempt.error is None


def test_only_the_first_2_kb_of_the_response_is_kept(server: Server) -> None:
    attempt, _ = send(server, "/big")
    assert attempt.ok and attempt.response_head == b"x" * 2048


def test_a_redirect_is_a_failure_and_is_not_followed(server: Server) -> None:
    attempt, connections = send(server, "/redirect")
    assert attempt.status == 301
    assert attempt.error is not None and "redirect not followed" in attempt.error
    assert not attempt.ok
    assert server.paths == ["/redirect"]  # /target was never requested
    assert len(connections.attempts) == 1


def test_429_with_retry_after_seconds(server: Server) -> None:
    attempt, _ = send(server, "/throttled")
    assert attempt.status == 429 and attempt.error == "HTTP 429"
    assert attempt.retry_after == 120.0
    assert attempt.response_head == b"slow down"


def test_429_with_retry_after_as_an_http_date(server: Server) -> None:
    attempt, _ = send(server, "/throttled-date")
    assert attempt.status == 429
    assert attempt.retry_after is not None and 80 <= attempt.retry_after <= 91


def test_503_is_a_failure(server: Server) -> None:
    attempt, _ = send(server, "/unavailable")
    assert attempt.status == 503 and attempt.error == "HTTP 503"
    assert attempt.response_head == b"down for maintenance"


def test_a_slow_server_hits_the_timeout(server: Server) -> None:
    started = time.monotonic()
    attempt, connections = send(server, "/slow", timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert attempt.status is None and attempt.error == "timed out after 0.5 s"
    assert 400 <= attempt.latency_ms < 2500
    assert len(connections.attempts) == 1


def test_the_timeout_bounds_the_whole_attempt_not_each_read(server: Server) -> None:
    started = time.monotonic()
    attempt, _ = send(server, "/drip", timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert attempt.status is None and attempt.error == "timed out after 0.5 s"


def test_a_closed_port_is_a_connection_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    destination = check_destination(f"http://127.0.0.1:{port}/", allow_hosts=LOCAL, resolver=no_dns)
    connections = Connections()
    attempt = post(destination, b"{}", {}, allow_hosts=LOCAL, resolver=no_dns, connect=connections)
    assert attempt.status is None and not attempt.refused
    assert attempt.error is not None and attempt.error.startswith("connection failed")
    assert connections.attempts == [("127.0.0.1", port)]


def test_an_allow_listed_name_connects_to_the_checked_address_not_the_name(server: Server) -> None:
    allow = frozenset({"hooks.parley.test"})  # not resolvable by real DNS: only the pin can work
    resolver = fixed("127.0.0.1")
    destination = check_destination(
        server.url("/ok", "hooks.parley.test"), allow_hosts=allow, resolver=resolver
    )
    connections = Connections()
    attempt = post(
        destination, b"{}", {}, allow_hosts=allow, resolver=resolver, connect=connections
    )
    assert attempt.ok
    assert connections.attempts == [("127.0.0.1", server.port)]
    assert server.received[0].headers["host"] == f"hooks.parley.test:{server.port}"
    assert resolver.calls == ["hooks.parley.test", "hooks.parley.test"]  # type: ignore[attr-defined]


def test_the_address_is_checked_again_at_connect_time() -> None:
    resolver = sequence([PUBLIC], ["10.0.0.1"])
    destination = check_destination(
        "https://hooks.example.com/in", allow_hosts=NOBODY, resolver=resolver
    )
    connections = Connections(allowed=False)
    attempt = post(
        destination, b"{}", {}, allow_hosts=NOBODY, resolver=resolver, connect=connections
    )
    assert attempt.refused and attempt.status is None
    assert attempt.error == (
        "destination refused: hooks.example.com resolves to 10.0.0.1, which is private (RFC 1918)"
    )
    assert connections.attempts == []


def test_a_host_removed_from_the_allow_list_is_refused_at_connect_time(server: Server) -> None:
    destination = check_destination(server.url("/ok"), allow_hosts=LOCAL, resolver=no_dns)
    connections = Connections(allowed=False)
    attempt = post(destination, b"{}", {}, allow_hosts=NOBODY, resolver=no_dns, connect=connections)
    assert attempt.refused and "plain http" in (attempt.error or "")
    assert connections.attempts == [] and server.received == []


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding"])
def test_transport_headers_cannot_be_supplied(name: str, server: Server) -> None:
    destination = check_destination(server.url("/ok"), allow_hosts=LOCAL, resolver=no_dns)
    with pytest.raises(ValueError, match=name):
        post(destination, b"{}", {name: "x"}, allow_hosts=LOCAL, resolver=no_dns)
    assert server.received == []


# --------------------------------------------------------------------------------------------
# TLS: the certificate is verified against the name while the socket goes to the pinned address


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.parley.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("hooks.parley.test")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Server, list[str | None]]]:
    cert_path, key_path = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,return-value]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler, bind_and_activate=False)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    httpd.socket = context.wrap_socket(
        httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    httpd.server_bind()
    httpd.server_activate()
    tls = Server(httpd)
    httpd.RequestHandlerClass = _handler(tls)
    httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield tls, names
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _client_context(cert_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert_path))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


def test_tls_uses_the_name_for_sni_and_verification(
    tls_server: tuple[Server, list[str | None]], certificate: tuple[Path, Path]
) -> None:
    tls, names = tls_server
    allow = frozenset({"hooks.parley.test"})
    resolver = fixed("127.0.0.1")
    url = f"https://hooks.parley.test:{tls.port}/ok"
    destination = check_destination(url, allow_hosts=allow, resolver=resolver)
    connections = Connections()

    attempt = post(
        destination,
        b"secret",
        {},
        allow_hosts=allow,
        resolver=resolver,
        connect=connections,
        verify=_client_context(certificate[0]),
    )

    assert attempt.ok, attempt.error
    assert names == ["hooks.parley.test"]
    assert connections.attempts == [("127.0.0.1", tls.port)]
    assert tls.received[0].body == b"secret"


def test_tls_refuses_a_certificate_for_another_name(
    tls_server: tuple[Server, list[str | None]], certificate: tuple[Path, Path]
) -> None:
    tls, names = tls_server
    allow = frozenset({"other.parley.test"})
    resolver = fixed("127.0.0.1")
    destination = check_destination(
        f"https://other.parley.test:{tls.port}/ok", allow_hosts=allow, resolver=resolver
    )

    attempt = post(
        destination,
        b"secret",
        {},
        allow_hosts=allow,
        resolver=resolver,
        connect=Connections(),
        verify=_client_context(certificate[0]),
    )

    assert attempt.status is None and not attempt.ok
    assert "CERTIFICATE_VERIFY_FAILED" in (attempt.error or "")
    assert names == ["other.parley.test"]
    assert tls.received == []


def test_certificate_verification_cannot_be_switched_off(server: Server) -> None:
    destination = check_destination(server.url("/ok"), allow_hosts=LOCAL, resolver=no_dns)
    with pytest.raises(ValueError, match="verify"):
        post(destination, b"{}", {}, allow_hosts=LOCAL, resolver=no_dns, verify=False)


# --------------------------------------------------------------------------------------------
# Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Wed, 01 Jan 2025 00:02:00 GMT", 120.0),
        ("Wed, 01 Jan 2025 00:00:00 GMT", 0.0),
        ("Tue, 31 Dec 2024 23:00:00 GMT", 0.0),  # in the past: retry now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert parse_retry_after(value, now=now) == expected
