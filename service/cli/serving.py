"""`parley serve`: what must exist once is made in the parent, then granian runs N worker processes that each build the app."""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any

from service.settings import Settings

# Each worker builds its own app (store pools, live states, runners) from the PARLEY_* environment.
APP_FACTORY = "service.app:app_from_env"
_PR_SET_PDEATHSIG = 1


def prepare(settings: Settings) -> str | None:
    """Tables, the signing key file and, on first start, an admin key, whose secret is returned.

    Done once before any worker starts: workers creating them together would race for them.
    """
    from service.followers.views import open_view_tables
    from service.stores import open_log
    from service.auth import KeyStore
    from service.signing import Signer
    from service.webhooks.store import open_webhook_tables

    Signer.load(settings.signing_key, settings.signing_key_file)
    log = open_log(settings)
    try:
        open_view_tables(log).datastore.close()  # type: ignore[attr-defined]
        open_webhook_tables(log).datastore.close()  # type: ignore[attr-defined]
        keys = KeyStore(log)
        if not settings.bootstrap_admin or keys.count() > 0:
            return None
        return keys.create(name="admin", role="admin", created_by="parley-bootstrap").key
    finally:
        log.close()


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT: then stop accepting, let requests in flight finish (up to
    `shutdown_grace` seconds), run each worker's lifespan shutdown (runners and senders stop at a
    transaction boundary) and exit 0."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    os.environ.update(settings.to_env())  # how the CLI's options reach every worker
    _allow_open_files(settings.max_connections + 256)  # each connection is a file; the rest: stores, logs, leases
    server = Granian(
        APP_FACTORY,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=round(settings.header_read_timeout * 1000)),
        backpressure=settings.max_connections,
        websockets=False,
        log_level=LogLevels.warning,
        respawn_failed_workers=True,
        workers_kill_timeout=settings.shutdown_grace,
    )
    server.serve(target_loader=functools.partial(worker_app, parent_pid=os.getpid()))


class PortInUseError(OSError):
    """Another process listens on the address `parley serve` was asked to bind."""


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on. Granian binds with SO_REUSEPORT, which would let a second
    server share the port silently and split the requests; a probe without that option cannot bind then."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no one's
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(errno.EADDRINUSE, f"{host}:{port} is already in use by another process") from None
            raise


def _allow_open_files(wanted: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def worker_app(target: str, *, parent_pid: int) -> Any:
    """Runs in each worker process (granian passes APP_FACTORY as `target`): tie the worker to the
    parent, then build the app from the environment."""
    from service.app import app_from_env

    _exit_with_parent(parent_pid)
    return app_from_env()


def _exit_with_parent(parent_pid: int) -> None:
    """A SIGKILLed parent cannot stop its workers: have the kernel SIGTERM them then, so none serves on orphaned."""
    if sys.platform != "linux":
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
