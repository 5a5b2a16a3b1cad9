"""A minimal keep-alive HTTP/1.1 client on a raw socket, so the load generator spends little CPU.

httpx costs about as much CPU per request as the server does; on a 2-core machine that would
measure the client. This speaks just enough HTTP for Parley's JSON answers (Content-Length bodies).
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (a Content-Length body) off an asyncio stream and return its status."""
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


class RawClient:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        self.host = url.hostname or "127.0.0.1"
        self.sock = socket.create_connection((self.host, url.port or 80))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        status = int(self.file.readline().split()[1])
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, self.file.read(length)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
