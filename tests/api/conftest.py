from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings


@dataclass
class Api:
    client: TestClient[Any]
    keys: dict[str, str]

    def headers(self, role: str = "reporter", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}", **extra}

    def post(self, path: str, body: Any = None, role: str = "reporter", **kwargs: Any) -> Any:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        if isinstance(body, (bytes, str)):
            return self.client.post(path, content=body, headers={"content-type": "application/json", **headers}, **kwargs)
        return self.client.post(path, json=body, headers=headers, **kwargs)

    def get(self, path: str, role: str = "reader", **kwargs: Any) -> Any:
        return self.client.get(path, headers={**self.headers(role), **kwargs.pop("headers", {})}, **kwargs)

    def open(self, negotiation_id: str = "talks", parties: tuple[str, ...] = ("US", "CN")) -> dict[str, Any]:
        response = self.post("/v1/negotiations", {"id": negotiation_id, "title": negotiation_id.title(), "parties": list(parties)})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def api(database_url: str, clock: Any, tmp_path: Any) -> Iterator[Api]:
    settings = Settings(database_url=database_url, signing_key_file=str(tmp_path / "signing.key"))
    with TestClient(create_app(settings, clock=clock)) as client:
        store = client.app.state.key_store
        keys = {role: store.create(name=f"{role}-key", role=role, created_by="test").key for role in ("reader", "reporter", "admin")}
        revoked = store.create(name="revoked-key", role="admin", created_by="test")
        store.revoke(revoked.id, revoked_by="test")
        keys["revoked"] = revoked.key
        keys["bad"] = "pk_not-a-key"
        yield Api(client, keys)


@contextmanager
def api_with(database_url: str, clock: Any, tmp_path: Any, **settings: Any) -> Iterator[Api]:
    """An in-process client like `api`, on other settings (the webhook sender stays off)."""
    config = Settings(database_url=database_url, signing_key_file=str(tmp_path / "signing.key"), run_webhooks=False, **settings)
    with TestClient(create_app(config, clock=clock)) as client:
        store = client.app.state.key_store
        keys = {role: store.create(name=f"{role}-key", role=role, created_by="test").key for role in ("reader", "reporter", "admin")}
        yield Api(client, keys)


def deadline(deadline_id: str = "truce-expiry", due_on: str = "2025-08-12", **extra: Any) -> dict[str, Any]:
    return {
        "type": "deadline_set",
        "occurred_on": "2025-05-12",
        "deadline_id": deadline_id,
        "title": "Truce expiry",
        "due_on": due_on,
        "source": {"name": "White House", "title": "Joint Statement on U.S.-China Economic and Trade Meeting in Geneva",
                   "published_at": "2025-05-12", "reliability": "A", "credibility": 1},
        **extra,
    }


def measure(measure_id: str = "us-ieepa-fentanyl-cn", rate: float = 10, **extra: Any) -> dict[str, Any]:
    return {
        "type": "measure_changed",
        "occurred_on": "2025-02-01",
        "measure_id": measure_id,
        "kind": "tariff",
        "status": "in_force",
        "imposed_by": "US",
        "applies_to": "CN",
        "legal_basis": "IEEPA",
        "rate_pct": rate,
        "effective_from": "2025-02-04",
        "source": {"name": "The White House", "published_at": "2025-02-01"},
        **extra,
    }
