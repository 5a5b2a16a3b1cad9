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
    from granian.log import LogLevels

    os.environ.update(settings.to_env())  # how the CLI's options reach every worker
    server = Granian(
        APP_FACTORY,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels.warning,
        respawn_failed_workers=True,
        workers_kill_timeout=settings.shutdown_grace,
    )
    server.serve(target_loader=functools.partial(worker_app, parent_pid=os.getpid()))


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
