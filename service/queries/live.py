"""Live states: one folded `State` per negotiation, kept current by fast-forwarding from the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from events.application import ParleyLog
from events.errors import NegotiationNotFoundError
from events.records import stream_id
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

    @contextmanager
    def _lock(self, negotiation_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(negotiation_id, threading.Lock())
        with lock:
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
        heads = self._heads
        if heads is not None and heard_up_to is not None and heads.live and heard_up_to <= heads.position:
            state = self._states.get(negotiation_id)
            if state is not None and heads.version(stream_id(negotiation_id)) == state.version:
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

