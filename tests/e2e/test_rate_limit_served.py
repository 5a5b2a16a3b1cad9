"""Two real `parley serve` processes on one database share each key's rate limit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.process import create_key, start_server, stop_server

pytestmark = pytest.mark.slow

LIMIT = 4
# An hour's window: the quota comes back one request per 15 minutes, never during the test.
LIMITED = {"PARLEY_RATE_LIMIT": str(LIMIT), "PARLEY_RATE_LIMIT_WINDOW": "3600"}


def test_two_processes_share_one_count_per_key(database_url: str, tmp_path: Path) -> None:
    key = create_key(database_url, "desk", "reader")
    other = create_key(database_url, "other-desk", "reader")
    env = {**LIMITED, "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    first, first_url = start_server(database_url, tmp_path / "first.log", env=env)
    try:
        second, second_url = start_server(
            database_url, tmp_path / "second.log", env={**env, "PARLEY_RUN_PROJECTIONS": "0", "PARLEY_RUN_WEBHOOKS": "0"}
        )
        try:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(headers=headers, timeout=30) as client:
                spread = [client.get(f"{url}/v1/negotiations") for url in (first_url, second_url) * (LIMIT // 2)]
                assert [a.status_code for a in spread] == [200] * LIMIT
                assert [a.headers["ratelimit-remaining"] for a in spread] == [str(n) for n in range(LIMIT - 1, -1, -1)]
                for url in (first_url, second_url):
                    refused = client.get(f"{url}/v1/negotiations")
                    assert refused.status_code == 429, url
                    assert int(refused.headers["retry-after"]) > 0 and refused.headers["ratelimit-remaining"] == "0"
            assert httpx.get(f"{second_url}/v1/negotiations", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        finally:
            stop_server(second)
    finally:
        stop_server(first)
