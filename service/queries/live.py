"""Live states: one folded `State` per negotiation, kept current by fast-forwarding from the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from events.application import ParleyLog
from events.errors import NegotiationNotFoundError
from events.records import Recorded, stream_id
from projections.state import State, fold
from service.followers.heads import StreamHeads
from service.queries.timelimit import CHECK_EVERY, UNLIMITED, TimeLimit

# events read from the store at a time while catching up, so a time limit is checked between reads too
_PAGE = 5000


class LiveStates:
    """Answers every (as_of, known_at) from a state that only ever reads events it has not seen."""

    def __init__(self, log: ParleyLog, heads: StreamHeads | None = None) -> None:
        self._log = log
        self._heads = heads
        self._states: dict[str, State] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        if heads is not None:  # what `current` answers from; without heads every read asks the store anyway
            log.recorded_listeners.append(self._committed)

    def _committed(self, negotiation_id: str, records: Sequence[Recorded]) -> None:
        """This process's own append has committed: fold its records into the kept state when that state is the one
        right before them, so the reads that follow (a negotiation read while it is written) neither read the events
        back nor leave the event loop. Otherwise, or while a reader is catching the negotiation up, leave it: the next
        read catches up from the store. Runs in the log's writer thread, so it never waits and never raises."""
        lock = self._lock_of(negotiation_id)
        if not lock.acquire(blocking=False):
            return
        try:
            state = self._states.get(negotiation_id)
            if state is not None and records and state.version == records[0].originator_version - 1:
                self._states[negotiation_id] = fold(records, state)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a fold that fails here fails the next read's catch-up, where it is answered
            self._states.pop(negotiation_id, None)
        finally:
            lock.release()

    def current(self, negotiation_id: str, heard_up_to: int | None = None) -> State | None:
        """The kept state when it is the stream's newest this process has heard of (covering `heard_up_to`), without
        a query or a lock; None when only `state` can tell."""
        heads = self._heads
        if heads is None or not heads.live or (heard_up_to is not None and heard_up_to > heads.position):
            return None
        state = self._states.get(negotiation_id)
        if state is not None and heads.version(stream_id(negotiation_id)) == state.version:
            return state
        return None

    def _lock_of(self, negotiation_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(negotiation_id, threading.Lock())

    @contextmanager
    def _lock(self, negotiation_id: str) -> Iterator[None]:
        with self._lock_of(negotiation_id):
            yield

    def state(self, negotiation_id: str, time_limit: TimeLimit = UNLIMITED, *, heard_up_to: int | None = None) -> State:
        """The negotiation's state with every event recorded so far; 404 if it has none.

        Past its time limit a catch-up stops between events and keeps what it folded, so the next request goes on from there.
        `heard_up_to`: the caller accepts "every event this process has heard of" (service/followers/heads.py) as long as
        that covers this log position (0: any); then a state already at the stream's newest version heard is answered
        without asking the store (no query, no lock).
        """
        if negotiation_id.startswith("_"):
            raise NegotiationNotFoundError(negotiation_id)  # system streams are not negotiations
        if heard_up_to is not None and (state := self.current(negotiation_id, heard_up_to)) is not None:
            return state
        with self._lock(negotiation_id):
            state = self._states.get(negotiation_id) or State()
            while True:
                time_limit.check()
                page = self._log.recorded_after(negotiation_id, state.version or None, limit=_PAGE)
                for start in range(0, len(page), CHECK_EVERY):
                    state = fold(page[start : start + CHECK_EVERY], state)  # type: ignore[arg-type]
                    if state.size:
                        self._states[negotiation_id] = state
                    time_limit.check()
                if len(page) < _PAGE:
                    break
            if state.size == 0:
                raise NegotiationNotFoundError(negotiation_id)
            return state

