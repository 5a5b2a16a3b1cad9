"""The `parley` command line's own surface: its version."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def test_parley_version_prints_the_installed_version_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "service", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"parley {version('parley')}"
