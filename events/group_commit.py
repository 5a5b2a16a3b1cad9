"""Group commit: appends to different negotiations that arrive together share one transaction.

Each request still gets its answer only after the transaction that holds its events has
committed. A group that fails on a constraint (a version race, a reused key) is written again
one request at a time, so one request's conflict never fails another's events.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError

Save = Callable[..., list[Any]]


class _Pending:
    def __init__(self, records: Sequence[Any], idempotency: Sequence[Any]) -> None:
        self.records = records
        self.idempotency = idempotency
        self.done: Future[tuple[list[Any], list[str]]] = Future()


class GroupCommit:
    def __init__(self, save: Save, *, max_events: int = 2000) -> None:
        self._save = save
        self._max_events = max_events
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def write(self, records: Sequence[Any], idempotency: Sequence[Any]) -> tuple[list[Any], list[str]]:
        """Store these records (one request's, one stream's) and return their recordings and chain hashes."""
        self._start()
        pending = _Pending(records, idempotency)
        self._queue.put(pending)
        return pending.done.result()

    def _start(self) -> None:
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            size = len(group[0].records)
            while size < self._max_events:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(more)
                size += len(more.records)
            try:
                self._commit(group)
            except Exception as error:  # noqa: BLE001 - handed to every waiting caller, who raises it
                for pending in group:
                    if not pending.done.done():
                        pending.done.set_exception(error)

    def _commit(self, group: list[_Pending]) -> None:
        if len(group) > 1:
            hashes: list[str] = []
            try:
                recordings = self._save(
                    *(r for p in group for r in p.records), idempotency=[i for p in group for i in p.idempotency], hashes=hashes
                )
            except IntegrityError:
                pass  # someone in the group lost a race: write them one by one below
            except (PersistenceError, OSError) as error:
                for pending in group:
                    pending.done.set_exception(error)
                return
            else:
                start = 0
                for pending in group:
                    end = start + len(pending.records)
                    pending.done.set_result((recordings[start:end], hashes[start:end]))
                    start = end
                return
        for index, pending in enumerate(group):
            hashes = []
            try:
                recordings = self._save(*pending.records, idempotency=pending.idempotency, hashes=hashes)
            except IntegrityError as error:
                pending.done.set_exception(error)
            except (PersistenceError, OSError) as error:
                # The store went away: the others would each wait for it in turn; they fail now, and retry.
                for waiting in group[index:]:
                    waiting.done.set_exception(error)
                return
            else:
                pending.done.set_result((recordings, hashes))
