"""Live states: one folded `State` per negotiation, kept current by fast-forwarding from the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from events.application import ParleyLog
from events.errors import NegotiationNotFoundError
from projections.state import State, fold


class LiveStates:
    """Answers every (as_of, known_at) from a state that only ever reads events it has not seen."""

    def __init__(self, log: ParleyLog) -> None:
        self._log = log
        self._states: dict[str, State] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def _lock(self, negotiation_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(negotiation_id, threading.Lock())
        with lock:
            yield

    def state(self, negotiation_id: str) -> State:
        """The negotiation's state with every event recorded so far; 404 if it has none."""
        if negotiation_id.startswith("_"):
            raise NegotiationNotFoundError(negotiation_id)  # system streams are not negotiations
        with self._lock(negotiation_id):
            cached = self._states.get(negotiation_id)
            newer = self._log.recorded_after(negotiation_id, cached.version if cached else None)
            state = fold(newer, cached)
            if state.size == 0:
                raise NegotiationNotFoundError(negotiation_id)
            self._states[negotiation_id] = state
            return state
