"""Every shell example in the README and docs/ runs as written, in order, against a served Parley as `make run` leaves it.

The server holds the shipped negotiations (`parley demo load`) on a fresh SQLite file; each file's ```sh blocks run
in one bash, in order (so an `export` carries on), in a scratch folder whose `.venv` is the checkout's (so
`.venv/bin/parley` works and files an example writes land there), with `API` (the server's base URL) and `KEY` (an
admin key, the one `make run` prints) set, `set -euo pipefail` on, and `http://127.0.0.1:8000` read as the server's
own address. A synopsis (options in brackets) is a ```text block, not a shell one. A line
`# => text` in a block says what its output shows: the test fails unless the block's output contains each such text.
A block that cannot run unattended (a build, a cluster, the test suite itself) is preceded by the line
`<!-- not run: why -->`, and the reason must be given.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.process import create_key, start_server, stop_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(sh|bash|shell|console)\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>[^>]*?)\s*-->\s*$")
EXPECT = re.compile(r"#\s*=>\s*(?P<text>.+?)\s*$")
PLACEHOLDER_KEY = re.compile(r"^\s*export KEY=pk_\.\.\..*$", re.M)


@dataclass
class Block:
    file: str
    line: int
    code: str
    skip_reason: str | None

    @property
    def expected(self) -> list[str]:
        return [m.group("text") for line in self.code.splitlines() if (m := EXPECT.search(line))]


def blocks(file: str) -> list[Block]:
    text = (ROOT / file).read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        marker = NOT_RUN.search(before[-1]) if before else None
        found.append(Block(file, text[: match.start()].count("\n") + 1, match.group(2), marker.group("why") if marker else None))
    return found


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What `make run` leaves: the shipped negotiations loaded into a fresh store, served, an admin key in hand."""
    folder = tmp_path_factory.mktemp("doc-examples")
    database = str(folder / "parley.db")
    subprocess.run([sys.executable, "-m", "service", "demo", "load", "--if-empty", "--database", database], check=True,
                   capture_output=True, cwd=ROOT)
    key = create_key(database, "admin", "admin")
    env = {"PARLEY_SIGNING_KEY_FILE": str(folder / "signing.key"), "PARLEY_RATE_LIMIT": "0"}
    process, base_url = start_server(database, folder / "server.log", env=env)
    yield {"API": base_url, "KEY": key, "PARLEY_DATABASE_URL": database, "PARLEY_SIGNING_KEY_FILE": env["PARLEY_SIGNING_KEY_FILE"],
           "PARLEY_URL": base_url, "PARLEY_KEY": key, "HOME": str(folder)}
    stop_server(process)


def test_every_block_that_is_not_run_says_why():
    for file in FILES:
        for block in blocks(file):
            assert block.skip_reason is None or block.skip_reason.strip(), f"{file}:{block.line}: a not-run block must say why"


@pytest.mark.parametrize("file", [f for f in FILES if any(b.skip_reason is None for b in blocks(f))])
def test_the_examples_of_a_file_run_as_written_and_show_what_they_say(make_run, file, tmp_path):
    runnable = [b for b in blocks(file) if b.skip_reason is None]
    script = ["set -euo pipefail"]
    for n, block in enumerate(runnable):
        code = PLACEHOLDER_KEY.sub("", block.code).replace("http://127.0.0.1:8000", make_run["API"])
        script += [f"echo '@@block {n}'", code, "echo", f"echo '@@end {n}'"]  # curl -s ends without a newline
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {**os.environ, **make_run, "COLUMNS": "120"}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        bash = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr,
                                start_new_session=True)
        try:
            returncode = bash.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(bash.pid, signal.SIGKILL)
            returncode = bash.wait()
    printed, errors = out.read_text(), err.read_text()
    outputs = dict(re.findall(r"^@@block (\d+)\n(.*?)^@@end \1$", printed, re.S | re.M))
    for n, block in enumerate(runnable):
        where = f"{file}:{block.line}"
        assert str(n) in outputs, (
            f"{where}: the block failed or hung (exit {returncode}):\n{block.code}\n--- output ---\n{printed[-3000:]}\n"
            f"--- stderr ---\n{errors[-3000:]}"
        )
        for text in block.expected:
            assert text in outputs[str(n)], f"{where}: the output does not show {text!r}:\n{outputs[str(n)][-3000:]}"
    assert returncode == 0, errors[-3000:]
