"""Tamper evidence: recompute the hash chain over the log, and check it against signed checkpoints."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

from events.store import GENESIS, link


class ChainReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    ok: bool
    checked: int
    head_position: int = 0
    head_hash: str = GENESIS
    broken_at: int | None = None
    previous_position: int | None = None
    reason: str | None = None


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A witness outsiders keep: the log's head at one moment, signed by the server."""

    position: int
    hash: str
    recorded_at: str
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return msgspec.json.encode({"position": self.position, "hash": self.hash, "recorded_at": self.recorded_at})


def verify_chain(rows: Iterable[dict[str, Any]], *, stop_at: int | None = None) -> tuple[ChainReport, dict[int, str]]:
    """Walk rows in position order; the first link that does not recompute is where the log was changed.

    Returns the report and the recomputed hash at `stop_at` (if it was reached), for checkpoint checks.
    """
    prev, previous_position, checked = GENESIS, 0, 0
    seen: dict[int, str] = {}
    for row in rows:
        position = int(row["position"])
        originator_id = row["originator_id"]
        if not isinstance(originator_id, uuid.UUID):
            originator_id = uuid.UUID(str(originator_id))
        expected = link(prev, position, originator_id, int(row["originator_version"]), row["topic"], bytes(row["state"]))
        if row["hash"] != expected:
            reason = (
                "the index row with its hash is missing" if row["hash"] is None
                else "the stored event or an earlier one was changed, removed or inserted"
            )
            return ChainReport(ok=False, checked=checked, head_position=previous_position, head_hash=prev,
                               broken_at=position, previous_position=previous_position, reason=reason), seen
        prev, previous_position, checked = expected, position, checked + 1
        if stop_at is not None and position == stop_at:
            seen[position] = expected
    return ChainReport(ok=True, checked=checked, head_position=previous_position, head_hash=prev), seen
