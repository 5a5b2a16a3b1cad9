"""The directory in which worker processes share their metrics (prometheus_client's multiprocess mode).

prometheus_client chooses its mode once, when it is first imported, from PROMETHEUS_MULTIPROC_DIR;
so the server's main process prepares the directory and sets the variable before anything imports
it, and the workers it starts inherit both. Nothing here imports prometheus_client.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PROCESS_FILE = re.compile(r"^[a-z_]+_(?P<pid>\d+)\.db$")


def shared_dir(directory: str) -> Path:
    """The one spelling of the directory every process compares (workers may start elsewhere)."""
    return Path(directory).expanduser().resolve()


def prepare_metrics_dir(directory: str, environ: MutableMapping[str, str] = os.environ) -> Path:
    """Create the directory, drop the files of processes that are gone, and point prometheus_client at it.

    Files of live processes stay: another server sharing the directory by mistake keeps its counts,
    and a worker that restarts under a new process id leaves its old counts in the sums.
    """
    path = shared_dir(directory)
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        match = _PROCESS_FILE.match(file.name)
        if match and not _alive(int(match.group("pid"))):
            file.unlink(missing_ok=True)
    environ[MULTIPROC_VARIABLE] = str(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
