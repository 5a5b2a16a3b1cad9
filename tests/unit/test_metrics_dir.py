"""The shared metrics directory: prepared once per server start, keeping the files of processes still alive."""

from __future__ import annotations

import os
import subprocess
import sys

from service.http.metrics_dir import MULTIPROC_VARIABLE, prepare_metrics_dir


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_files_of_dead_processes_go_and_files_of_live_ones_stay(tmp_path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    for name in (f"counter_{dead}.db", f"histogram_{dead}.db", f"counter_{alive}.db", f"gauge_livesum_{alive}.db", "notes.txt"):
        (directory / name).write_bytes(b"x")
    environ: dict[str, str] = {}

    prepared = prepare_metrics_dir(str(directory), environ)

    assert sorted(p.name for p in directory.iterdir()) == sorted([f"counter_{alive}.db", f"gauge_livesum_{alive}.db", "notes.txt"])
    assert environ == {MULTIPROC_VARIABLE: str(prepared)}


def test_the_directory_is_created_and_named_absolutely(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    prepared = prepare_metrics_dir("var/metrics", environ)
    assert prepared == tmp_path / "var" / "metrics" and prepared.is_dir()
    assert environ[MULTIPROC_VARIABLE] == str(tmp_path / "var" / "metrics")
