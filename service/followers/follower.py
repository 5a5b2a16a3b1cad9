"""A follower: follows the global log from its tracked position in batches, one active copy at a time (a lease).

PostgreSQL is followed with the library's LISTEN/NOTIFY subscription, SQLite by polling its log. Of
several copies of a follower, the one holding its lease (service/followers/leases.py) follows; the
others stand by. Persisted views (service/followers/views.py) and the webhook relay are followers.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from eventsourcing.persistence import Notification, PersistenceError

from events.application import ParleyLog
from events.records import Recorded
from projections.state import State, evolve
from service.followers.leases import Lease, open_lease, this_process
from service.followers.parking import Parking, is_poison, refold

Progress = Callable[[int, int], None]


class Follower:
    """Follows the global log from a tracked position, in batches; subclasses say what a batch does.

    `apply(batch)` must write its effects and the tracking of the batch's last position in one
    transaction; `tick()` runs when the log is quiet (calendar-driven work). After any failure the
    follower starts again from the stored position, so nothing is skipped and nothing applied twice.
    """

    name = "follower"
    MISSED_WAKEUP_SECONDS = 5.0  # quiet this long while the log is ahead: a wake-up was missed
    # Under a stream of appends, a batch waits this long after its first event for more, so that a busy
    # log costs one apply (one transaction, one rebuild of each touched negotiation's rows) per linger,
    # not one per append; a quiet log (nothing applied within the last linger) applies at once.
    LINGER_SECONDS = 0.05

    def __init__(self, log: ParleyLog, *, batch_size: int = 500, refresh_seconds: float = 60.0) -> None:
        self.log = log
        self.batch_size = batch_size
        self.refresh_seconds = refresh_seconds
        self._states: dict[str, State] = {}
        self._stopping = threading.Event()
        self._leave = threading.Event()  # set when stopping, or when the lease is lost
        self._lease: Lease | None = None
        self.lease_poll = 1.0
        self._threads: list[threading.Thread] = []
        self._subscription: Any = None
        self._log = structlog.get_logger("parley.followers").bind(follower=self.name)

    def position(self) -> int:
        raise NotImplementedError

    def apply(self, notifications: Sequence[Notification]) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Work that depends on the calendar, not on new events."""

    def reset(self) -> None:
        raise NotImplementedError

    @functools.cached_property
    def parking(self) -> Parking:
        return Parking(self.name, self.tables, self.log.clock)  # type: ignore[attr-defined]

    def fold_in(self, notifications: Sequence[Notification]) -> list[tuple[int, Recorded, State | None, State]]:
        """Each event with its position and its negotiation's state before and after it.

        An event that does not decode or fold is parked and left out of its negotiation's state.
        """
        for negotiation_id in self.parking.refresh():  # retried elsewhere: fold them in from the stream again
            self._states.pop(negotiation_id, None)
        folded = []
        for notification in notifications:
            record: Recorded | None = None
            try:
                record = self.log.mapper.to_domain_event(notification)  # type: ignore[assignment]
                before = self._state_before(record)
                after = evolve(before, record)
            except Exception as error:  # noqa: BLE001 - what this event does to the fold is the event's
                if not is_poison(error):
                    raise
                self.parking.park(notification.id, error, *((record.negotiation_id, record.event_id) if record else ()))
                continue
            self._states[record.negotiation_id] = after
            folded.append((notification.id, record, before if before.size else None, after))
        return folded

    def _state_before(self, record: Recorded) -> State:
        state = self._states.get(record.negotiation_id)
        if state is None or state.version >= record.originator_version:
            state = refold(self.log, record.negotiation_id, skip=self.parking.positions(), upto_version=record.originator_version - 1)
        return state

    def current_state(self, negotiation_id: str) -> State:
        state = refold(self.log, negotiation_id, skip=self.parking.positions())
        self._states[negotiation_id] = state
        return state

    # --- catching up in the foreground (rebuilds, tests) ----------------------------------

    def catch_up(self, progress: Progress | None = None) -> int:
        """Process everything after the position up to the head; return how many events."""
        done = 0
        position = self.position()
        head = self.log.head()
        while True:
            batch = self.log.recorder.select_notifications(
                start=position, limit=self.batch_size, inclusive_of_start=False
            )
            if not batch:
                return done
            self.apply(batch)
            position = batch[-1].id
            done += len(batch)
            if progress:
                progress(done, max(head - (position - done), done))

    def rebuild(self, progress: Progress | None = None) -> int:
        self.reset()
        self._states.clear()
        return self.catch_up(progress)

    # --- following in the background -----------------------------------------------------

    def start(self, *, lease_poll: float = 1.0) -> None:
        """Follow in the background while this process holds the lease named after the follower.

        Without the lease the follower stands by and tries again every `lease_poll` seconds; holding
        it, it checks as often that it still does, and leaves the log at a batch boundary if not.
        """
        self.lease_poll = lease_poll
        self._lease = self._lease or open_lease(self.log.env, self.name)
        thread = threading.Thread(target=self._supervise, name=f"follow-{self.name}", daemon=True)
        self._threads = [thread]
        thread.start()

    def _supervise(self) -> None:
        """Stand by until the lease is ours, follow while it stays ours, stand by again when it is not."""
        assert self._lease is not None
        waiting = False
        while not self._stopping.is_set():
            if not self._lease.acquire():
                if not waiting:
                    self._log.info("lease_waiting", holder=self._lease.holder(), poll=self.lease_poll)
                    waiting = True
                self._stopping.wait(self.lease_poll)
                continue
            waiting = False
            self._log.info("lease_acquired", holder=this_process())
            try:
                self._follow_while_leased()
            finally:
                self._lease.release()

    def _follow_while_leased(self) -> None:
        """Follow from the stored position; after any failure, start again from the stored position."""
        self._leave.clear()
        if self._stopping.is_set():  # stop() came between acquiring and here
            return
        watcher = threading.Thread(target=self._watch_lease, name=f"lease-{self.name}", daemon=True)
        watcher.start()
        try:
            while not self._leave.is_set():
                try:
                    self.tick()
                    self._follow_once()
                except (PersistenceError, OSError) as error:
                    # IntegrityError included: another runner moved the tracking; resume after it.
                    self._log.warning("follower_restarting", error=str(error))
                    self._leave.wait(1.0)
        finally:
            self._leave.set()
            watcher.join()

    def _watch_lease(self) -> None:
        assert self._lease is not None
        while not self._leave.wait(self.lease_poll):
            if not self._lease.held():
                self._log.warning("lease_lost", holder=this_process())
                self._leave.set()
                if self._subscription is not None:
                    self._subscription.stop()

    def _follow_once(self) -> None:
        received: queue.Queue[Notification | None] = queue.Queue(maxsize=self.batch_size * 4)
        subscription = self.log.recorder.subscribe(gt=self.position())
        self._subscription = subscription
        failure: list[BaseException] = []

        def follow() -> None:
            try:
                with subscription:
                    for notification in subscription:
                        received.put(notification)
            except (PersistenceError, OSError) as error:
                failure.append(error)
            finally:
                received.put(None)

        follower = threading.Thread(target=follow, name=f"follow-{self.name}-read", daemon=True)
        follower.start()
        ticked = heard = time.monotonic()
        applied = -float("inf")  # when the last batch was applied
        try:
            while not self._leave.is_set():
                try:
                    first = received.get(timeout=min(self.lease_poll, self.refresh_seconds))
                except queue.Empty:
                    now = time.monotonic()
                    if now - ticked >= self.refresh_seconds:
                        self.tick()
                        ticked = now
                    if now - heard >= self.MISSED_WAKEUP_SECONDS and self.log.head() > (position := self.position()):
                        # The library's PostgreSQL subscription reads what is there, then LISTENs: an event
                        # committed in between sends it no wake-up. Long quiet, yet behind: begin again from here.
                        self._log.info("follower_resubscribing", position=position)
                        break
                    continue
                if first is None:
                    break
                batch = [first]
                # busy: the last batch was applied moments ago, so more are likely on their way
                until = time.monotonic() + self.LINGER_SECONDS if time.monotonic() - applied < self.LINGER_SECONDS else 0.0
                while len(batch) < self.batch_size:
                    try:
                        wait = until - time.monotonic()
                        more = received.get(timeout=wait) if wait > 0 else received.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        received.put(None)
                        break
                    batch.append(more)
                self.apply(batch)
                heard = applied = time.monotonic()
        finally:
            subscription.stop()
            while follower.is_alive():  # let a reader blocked on a full queue finish
                try:
                    received.get_nowait()
                except queue.Empty:
                    follower.join(0.1)
        if failure:
            raise failure[0]

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the log after the batch in hand is committed, and give up the lease."""
        self._stopping.set()
        self._leave.set()
        if self._subscription is not None:
            self._subscription.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self._lease is not None:
            self._lease.release()


