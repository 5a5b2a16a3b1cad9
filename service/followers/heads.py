"""What this process knows of each stream's newest version, from its own commits and a tail of the log.

Every process keeps one: its own appends arrive before the writer returns (`ParleyLog.commit_listeners`),
other processes' through a lease-free tail (PostgreSQL LISTEN/NOTIFY, SQLite polling), so a read can
ask "has this negotiation moved?" without a query. While the tail is down the answer is "don't know".
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from eventsourcing.persistence import PersistenceError

from events.application import ParleyLog
from events.store import ParleySQLiteRecorder

# quiet this long while the log's head is ahead of what was heard: a wake-up was missed, subscribe again
_RESUBSCRIBE_SECONDS = 2.0


class StreamHeads:
    """The newest version heard per stream (by stream id), and up to which global position nothing was missed."""

    def __init__(self, log: ParleyLog) -> None:
        self._log = log
        self._versions: dict[uuid.UUID, int] = {}
        self._guard = threading.Lock()
        self.position = 0
        self._live = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Any = None
        self._logger = structlog.get_logger("parley.heads")

    @property
    def live(self) -> bool:
        """Whether every append after `position` reaches this object (the tail is following)."""
        return self._live and not self._stopping.is_set()

    def version(self, stream: uuid.UUID) -> int | None:
        return self._versions.get(stream)

    def saw(self, stream: uuid.UUID, version: int) -> None:
        """A fold of the primary found the stream at `version`: later appends come through the tail."""
        with self._guard:
            if version > self._versions.get(stream, 0):
                self._versions[stream] = version

    def heard(self, notifications: Sequence[Any]) -> None:
        with self._guard:
            for n in notifications:
                if n.originator_version > self._versions.get(n.originator_id, 0):
                    self._versions[n.originator_id] = n.originator_version
                if n.id > self.position:
                    self.position = n.id

    def start(self) -> None:
        self._log.commit_listeners.append(self.heard)
        self.position = self._log.head()
        self._thread = threading.Thread(target=self._follow, name="stream-heads", daemon=True)
        self._thread.start()
        self._watchdog = threading.Thread(target=self._watch, name="stream-heads-watch", daemon=True)
        self._watchdog.start()

    def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                self._subscription = self._subscribe()
                with self._subscription:
                    self._live = True
                    for notification in self._subscription:
                        self.heard([notification])
            except (PersistenceError, OSError) as error:
                self._logger.warning("heads_restarting", error=str(error))
            self._live = False
            self._stopping.wait(0.2)

    def _subscribe(self) -> Any:
        """The tail: this process's own commits arrive through `heard` already, so on SQLite the tail only polls
        (every 0.1 s) for other processes' instead of reading the log again after each local commit."""
        recorder = self._log.recorder
        if isinstance(recorder, ParleySQLiteRecorder):
            return recorder.subscribe(gt=self.position, local_wakeups=False)
        return recorder.subscribe(gt=self.position)

    def _watch(self) -> None:
        """A PostgreSQL subscription can miss the wake-up of a commit made while it starts: notice and resubscribe."""
        behind_since: int | None = None
        while not self._stopping.wait(_RESUBSCRIBE_SECONDS):
            try:
                head = self._log.head()
            except Exception:  # noqa: BLE001 - the store is down: the tail says so itself
                continue
            if head > self.position and behind_since is not None and self.position <= behind_since:
                self._live = False
                if self._subscription is not None:
                    self._subscription.stop()
            behind_since = self.position if head > self.position else None

    def stop(self) -> None:
        self._stopping.set()
        self._live = False
        if self.heard in self._log.commit_listeners:
            self._log.commit_listeners.remove(self.heard)
        if self._subscription is not None:
            self._subscription.stop()
        for thread in (self._thread, getattr(self, "_watchdog", None)):
            if thread is not None:
                thread.join(5)
