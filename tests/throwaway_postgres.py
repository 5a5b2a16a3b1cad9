"""A PostgreSQL server of the test's own (initdb in a temporary directory), so a test may stop and restart it.

Never the shared server on 5432: fault tests kill their own cluster with `-m immediate`.
As root the server runs as the `postgres` user (PostgreSQL refuses root); otherwise as the caller.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.process import free_port

REQUIRE_POSTGRES = os.environ.get("PARLEY_REQUIRE_POSTGRES") == "1"


def _bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class ThrowawayPostgres:
    """One cluster in a temporary directory on loopback; `restart` kills it as a crash would."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/parley"
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120, cwd=self.root)

    def create(self) -> None:
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n")
        self.start()
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE parley")

    def stop(self, mode: str = "immediate") -> None:
        """Stop at once: with `immediate`, no checkpoint and every connection cut, as in a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "start")

    def restart(self, down_for: float = 0.0) -> tuple[float, float]:
        """Crash-stop, stay down `down_for` seconds, start; the monotonic moments it went down and answered again."""
        self.stop("immediate")
        down_at = time.monotonic()
        time.sleep(down_for)
        self.start()
        return down_at, time.monotonic()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster the test owns and may crash; removed afterwards."""
    bindir = _bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        if REQUIRE_POSTGRES:
            pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are required for the fault tests")
        pytest.skip("no PostgreSQL server binaries to run a throwaway cluster")
    # Not under pytest's tmp_path: as root that is 0700 and the postgres user could not enter it.
    cluster = ThrowawayPostgres(bindir, Path(tempfile.mkdtemp(prefix="parley-pg-")), free_port())
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()
