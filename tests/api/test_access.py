"""Access keys and the auth matrix: every route x every kind of caller."""

from __future__ import annotations

import itertools
import time

import msgspec
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings
from tests.api.conftest import Api, api_with, deadline

ROUTES = [
    ("POST", "/v1/negotiations", "reporter", 201),
    ("GET", "/v1/negotiations", "reader", 200),
    ("GET", "/v1/negotiations/talks", "reader", 200),
    ("POST", "/v1/negotiations/talks/events", "reporter", 201),
    ("GET", "/v1/negotiations/talks/events", "reader", 200),
    ("GET", "/v1/events", "reader", 200),
    ("GET", "/v1/events/{event_id}", "reader", 200),
    ("POST", "/v1/keys", "admin", 201),
    ("GET", "/v1/keys", "admin", 200),
    ("GET", "/v1/keys/reader-key", "admin", 200),
    ("DELETE", "/v1/keys/{spare}", "admin", 200),
]
CALLERS = ["none", "bad", "revoked", "reader", "reporter", "admin"]
RANK = {"reader": 1, "reporter": 2, "admin": 3}
counter = itertools.count()


def _body(path: str) -> dict | None:
    n = next(counter)
    if path == "/v1/negotiations":
        return {"id": f"n{n}", "title": "N", "parties": ["US"]}
    if path.endswith("/events"):
        return deadline(f"d{n}")
    if path == "/v1/keys":
        return {"name": f"k{n}", "role": "reader"}
    return None


@pytest.mark.parametrize(("caller", "route"), list(itertools.product(CALLERS, ROUTES)), ids=lambda v: v if isinstance(v, str) else f"{v[0]} {v[1]}")
def test_auth_matrix(api, caller, route):
    method, path, needed, ok = route
    api.open()
    event_id = api.get("/v1/events").json()["items"][0]["event_id"]
    spare = api.post("/v1/keys", {"name": "spare", "role": "reader"}, role="admin").json()["id"]
    url = path.format(event_id=event_id, spare=spare)
    headers = {} if caller == "none" else {"Authorization": f"Bearer {api.keys[caller]}"}
    body = _body(path)
    response = api.client.request(method, url, json=body, headers=headers)
    if caller in ("none", "bad", "revoked"):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif RANK[caller] < RANK[needed]:
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["field"] == "Authorization"
    else:
        assert response.status_code == ok, response.text


def test_recorded_by_comes_from_the_key(api):
    api.open()
    event = api.post("/v1/negotiations/talks/events", deadline(), role="admin").json()["events"][0]
    assert event["recorded_by"] == "admin-key"


def test_keys_are_shown_once_listed_without_secrets_and_revocable(api):
    created = api.post("/v1/keys", {"name": "reuters-desk", "role": "reporter"}, role="admin")
    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith("pk_")
    listed = api.get("/v1/keys", role="admin").json()["items"]
    assert "reuters-desk" in [k["name"] for k in listed]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert secret not in api.get("/v1/keys", role="admin").text
    api.open()
    ok = api.client.post("/v1/negotiations/talks/events", json=deadline(), headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 201 and ok.json()["events"][0]["recorded_by"] == "reuters-desk"
    revoked = api.client.delete(f"/v1/keys/{created.json()['id']}", headers=api.headers("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "admin-key"
    after = api.client.post("/v1/negotiations/talks/events", json=deadline("x"), headers={"Authorization": f"Bearer {secret}"})
    assert after.status_code == 401
    taken = api.post("/v1/keys", {"name": "reuters-desk", "role": "reader"}, role="admin")
    assert taken.status_code == 409
    bad_role = api.post("/v1/keys", {"name": "x", "role": "god"}, role="admin")
    assert bad_role.status_code == 422 and bad_role.json()["errors"][0]["field"] == "role"


def test_keys_are_stored_hashed(api):
    secret = api.post("/v1/keys", {"name": "hashed", "role": "reader"}, role="admin").json()["key"]
    rows = api.client.app.state.log.run("SELECT * FROM parley_keys")
    assert rows and all(secret not in str(row) for row in rows)


def test_public_read_opens_reads_but_not_writes(database_url):
    with TestClient(create_app(Settings(database_url=database_url, public_read=True))) as client:
        assert client.get("/v1/negotiations").status_code == 200
        assert client.get("/v1/events").status_code == 200
        assert client.post("/v1/negotiations", json={"title": "x", "parties": ["US"]}).status_code == 401
        assert client.get("/v1/keys").status_code == 401


def test_a_key_revoked_in_one_process_is_refused_by_another_on_its_next_request(database_url, clock, tmp_path):
    """Two apps on one store (two workers): a revocation by either makes the other read the key again (on an SQLite
    file, the token beside it changes; on PostgreSQL, every request reads its key), so no process keeps letting it in."""
    with api_with(database_url, clock, tmp_path, rate_limit=0) as first:
        settings = msgspec.structs.replace(first.client.app.state.settings, bootstrap_admin=False)
        with TestClient(create_app(settings, clock=clock)) as client:
            second = Api(client, first.keys)
            created = first.client.post("/v1/keys", json={"name": "desk", "role": "reader"}, headers=first.headers("admin")).json()
            desk = {"Authorization": f"Bearer {created['key']}"}
            for _ in range(3):  # let in, and let in again, by both
                assert first.client.get("/v1/negotiations", headers=desk).status_code == 200
                assert second.client.get("/v1/negotiations", headers=desk).status_code == 200
            assert first.client.delete(f"/v1/keys/{created['id']}", headers=first.headers("admin")).status_code == 200
            refused = second.client.get("/v1/negotiations", headers=desk)
            assert refused.status_code == 401 and refused.json()["errors"][0]["field"] == "Authorization"
            assert first.client.get("/v1/negotiations", headers=desk).status_code == 401


def test_a_key_let_in_is_read_again_within_a_second_even_when_its_row_is_changed_by_hand(database_url, clock, tmp_path):
    """The bound for a revocation that bypasses Parley (SQL on the keys table, or a crash between its commit and the
    token change): a key let in is kept for at most a second."""
    with api_with(database_url, clock, tmp_path, rate_limit=0) as api:
        created = api.client.post("/v1/keys", json={"name": "desk", "role": "reader"}, headers=api.headers("admin")).json()
        desk = {"Authorization": f"Bearer {created['key']}"}
        assert api.client.get("/v1/negotiations", headers=desk).status_code == 200
        api.client.app.state.log.run("UPDATE parley_keys SET revoked_at = 'by hand' WHERE id = ?", (created["id"],), commit=True)
        time.sleep(1.1)
        assert api.client.get("/v1/negotiations", headers=desk).status_code == 401
