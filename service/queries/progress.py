"""How far each follower of the log has got, and what waits in the webhook outbox, read from the database.

Every process reads the same rows, so an API process that runs no projections of its own still
sees the separate projectors' progress.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from events.application import ParleyLog
from service.webhooks.store import RELAY, iso


class Followers(msgspec.Struct, frozen=True):
    """Where each follower keeps its position: view name -> (tracking table, name its rows carry there)."""

    views: dict[str, tuple[str, str]]
    relay: str


class Progress(msgspec.Struct, frozen=True):
    head: int
    views: dict[str, int]
    relay: int

    def view_lag(self) -> dict[str, int]:
        return {name: max(0, self.head - position) for name, position in self.views.items()}

    @property
    def relay_lag(self) -> int:
        return max(0, self.head - self.relay)


class OutboxDepth(msgspec.Struct, frozen=True):
    pending: int
    due: int
    delivering: int
    attempts: int
    failed_attempts: int


def followers_of(state: Any) -> Followers:
    """The app's persisted views and webhook relay, with the tracking tables they write."""
    return Followers(
        views={name: (_tracking_table(runner.tables), runner.spec.tracking) for name, runner in state.runners.items()},
        relay=_tracking_table(state.webhooks.tables),
    )


def _tracking_table(recorder: Any) -> str:
    # eventsourcing's PostgreSQL recorders name it per application; its SQLite recorders share one.
    return getattr(recorder, "tracking_table_name", "tracking")


def read_progress(log: ParleyLog, followers: Followers) -> Progress:
    """The log's head and every follower's position, in one statement (one snapshot)."""
    tracked = [*((tracking, table) for table, tracking in followers.views.values()), (RELAY, followers.relay)]
    positions = ", ".join(
        f"(SELECT MAX(notification_id) FROM {table} WHERE application_name = ?) AS f{i}" for i, (_, table) in enumerate(tracked)
    )
    row = log.run(f"SELECT (SELECT MAX(position) FROM parley_event_index) AS head, {positions}", [name for name, _ in tracked])[0]
    found = [int(row[f"f{i}"] or 0) for i in range(len(tracked))]
    return Progress(head=int(row["head"] or 0), views=dict(zip(followers.views, found[:-1], strict=True)), relay=found[-1])


def read_outbox(log: ParleyLog, now: dt.datetime) -> OutboxDepth:
    """Messages waiting (all pending, and those due now), being delivered, and delivery attempts so far."""
    row = log.run(
        "SELECT (SELECT COUNT(*) FROM parley_outbox WHERE status = 'pending') AS pending, "
        "(SELECT COUNT(*) FROM parley_outbox WHERE status = 'pending' AND next_attempt_at <= ?) AS due, "
        "(SELECT COUNT(*) FROM parley_outbox WHERE status = 'delivering') AS delivering, "
        "(SELECT COUNT(*) FROM parley_delivery_attempts) AS attempts, "
        "(SELECT COUNT(*) FROM parley_delivery_attempts WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299) AS failed",
        (iso(now),),
    )[0]
    return OutboxDepth(
        pending=int(row["pending"]), due=int(row["due"]), delivering=int(row["delivering"]),
        attempts=int(row["attempts"]), failed_attempts=int(row["failed"]),
    )


def views_behind(progress: Progress, bound: int) -> Mapping[str, int]:
    """Views further behind the head than `bound` events (none when the bound is 0)."""
    if bound <= 0:
        return {}
    return {name: lag for name, lag in progress.view_lag().items() if lag > bound}
