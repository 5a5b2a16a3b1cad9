"""`parley state --url`: the CLI asks a served Parley through its private answer cache and revalidates with ETags."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.process import log_lines

pytestmark = pytest.mark.slow

MEASURE = {"type": "measure_changed", "occurred_on": "2025-02-01", "measure_id": "us-ieepa-fentanyl-cn", "kind": "tariff",
           "status": "in_force", "imposed_by": "US", "applies_to": "CN", "rate_pct": 10, "effective_from": "2025-02-04",
           "legal_basis": "IEEPA"}


def _state(served, cache: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARLEY_CLI_CACHE": cache, "COLUMNS": "120"}
    env.pop("PARLEY_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "service", "state", "talks", "--url", served.base_url, "--key", served.admin_key, *extra],
        env=env, capture_output=True, text=True, timeout=60,
    )


def _state_statuses(served, offset: int) -> list[int]:
    time.sleep(0.3)  # the request's log line is written after its response
    return [line["status"] for line in log_lines(served.log_path, "request", offset=offset) if str(line["path"]).endswith("/state")]


def test_state_over_url_is_revalidated_from_the_cli_cache_and_follows_an_append(served, tmp_path: Path) -> None:
    with served.client() as client:
        assert client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).status_code == 201
        assert client.post("/v1/negotiations/talks/events", json=MEASURE).status_code == 201
    cache = tmp_path / "cache" / "answers.sqlite"

    start = served.log_path.stat().st_size
    first = _state(served, str(cache), "--as-of", "2025-03-01", "--json")
    second = _state(served, str(cache), "--as-of", "2025-03-01", "--json")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["tariffs"] == json.loads(second.stdout)["tariffs"]
    assert json.loads(first.stdout)["tariffs"]["directions"][0]["total_additional_pct"] == 10
    assert _state_statuses(served, start) == [200, 304]  # the second answer came from the cache, revalidated
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    with served.client() as client:
        raised = {**MEASURE, "occurred_on": "2025-02-20", "rate_pct": 20, "effective_from": "2025-02-21"}
        assert client.post("/v1/negotiations/talks/events", json=raised).status_code == 201
    start = served.log_path.stat().st_size
    third = _state(served, str(cache), "--as-of", "2025-03-01", "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["tariffs"]["directions"][0]["total_additional_pct"] == 20  # never a stale answer
    assert _state_statuses(served, start) == [200]


def test_state_over_url_without_a_cache_and_with_a_wrong_key(served, tmp_path: Path) -> None:
    with served.client() as client:
        assert client.post("/v1/negotiations", json={"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).status_code == 201
    start = served.log_path.stat().st_size
    for _ in range(2):
        shown = _state(served, "off", "--as-of", "2025-03-01")
        assert shown.returncode == 0, shown.stderr
        assert "Talks" in shown.stdout and "as of 2025-03-01" in shown.stdout
    assert _state_statuses(served, start) == [200, 200]
    assert not list(tmp_path.glob("**/*.sqlite"))

    env = {**os.environ, "PARLEY_CLI_CACHE": "off"}
    refused = subprocess.run(
        [sys.executable, "-m", "service", "state", "talks", "--url", served.base_url, "--key", "pk_wrong"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 1
    assert "401" in refused.stderr and "--key" in refused.stderr and "Traceback" not in refused.stderr
