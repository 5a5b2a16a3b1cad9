"""Group commit: appends that arrive together share one transaction, in the order they were submitted.

Each request still gets its answer only after the transaction that holds its events has
committed. A group that fails on a constraint (a version race, a reused key) is written again
one request at a time, so one request's conflict never fails another's events.

An append may be decided on another that is still waiting to commit (`after`: the same stream's
previous append), so appends to one stream need not wait for each other's commits. If that one
fails, this one is not written: it fails with `Abandoned`, and its writer decides again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError

Save = Callable[..., list[Any]]


class Abandoned(Exception):
    """The append this one was decided on did not commit, so this one was not written."""


class Pending:
    """One request's records on their way to a commit."""

    def __init__(
        self, records: Sequence[Any], idempotency: Sequence[Any], after: Pending | None, on_commit: Callable[[], None] | None,
    ) -> None:
        self.records = records
        self.idempotency = idempotency
        self.after = after
        self.on_commit = on_commit
        self.done: Future[tuple[list[Any], list[str]]] = Future()

    def result(self) -> tuple[list[Any], list[str]]:
        """The recordings and chain hashes once committed; raises what the commit raised, or Abandoned."""
        return self.done.result()

    def _orphaned(self) -> bool:
        """The append it was decided on failed (or was itself abandoned)."""
        return self.after is not None and self.after.done.done() and self.after.done.exception() is not None

    def _succeed(self, recordings: list[Any], hashes: list[str]) -> None:
        if self.on_commit is not None:
            self.on_commit()  # before the writer hears, and in commit order
        self.done.set_result((recordings, hashes))


class GroupCommit:
    def __init__(self, save: Save, *, max_events: int = 2000) -> None:
        self._save = save
        self._max_events = max_events
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def write(self, records: Sequence[Any], idempotency: Sequence[Any]) -> tuple[list[Any], list[str]]:
        """Store these records (one request's, one stream's) and return their recordings and chain hashes."""
        return self.submit(records, idempotency).result()

    def submit(
        self, records: Sequence[Any], idempotency: Sequence[Any], *, after: Pending | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> Pending:
        """Queue these records for a commit after everything submitted before them; `after`: the append they were
        decided on (written only if it commits); `on_commit` runs once they have committed, in commit order."""
        self._start()
        pending = Pending(records, idempotency, after, on_commit)
        self._queue.put(pending)
        return pending

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

    def _commit(self, group: list[Pending]) -> None:
        group = self._without_orphans(group)
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
                    pending._succeed(recordings[start:end], hashes[start:end])
                    start = end
                return
        for index, pending in enumerate(group):
            if pending._orphaned():
                pending.done.set_exception(Abandoned())
                continue
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
                pending._succeed(recordings, hashes)

    @staticmethod
    def _without_orphans(group: list[Pending]) -> list[Pending]:
        """The group less the appends decided on one that failed (and those decided on them): those fail now."""
        kept = []
        for pending in group:
            if pending._orphaned():
                pending.done.set_exception(Abandoned())
            else:
                kept.append(pending)
        return kept
