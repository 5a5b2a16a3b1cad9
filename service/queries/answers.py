"""Answers kept as encoded bytes, keyed by what determines them: the negotiation's events known at each known_at.

An answer about a negotiation is a pure function of (the events of its stream recorded by known_at, as_of, the
other parameters). Those events are a prefix of the stream (its `cut`) while recording times do not go back, so
the key holds the cut, not the timestamp: every known_at between the same two events shares one entry, and a new
event makes new keys (nothing is ever invalidated). Which cut "now" is comes from this process's knowledge of the
stream's newest version (service/followers/heads.py) and the last state folded for it, without a query; when
either is missing or behind, the answer is folded as before and its key read off the folded state.

Sources an answer names are immutable rows created before any event may name them, so they are not in the key.
The answers echo `known_at`: that one field is spliced in per request, so the bytes equal a fresh fold's.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import msgspec

from events.records import stream_id
from projections.state import Budget, State
from service.followers.heads import StreamHeads
from service.queries.store import ReadSides, ReadStore, answer

# Bump when an answer's encoding changes: old keys then never match (an ETag from before is a miss).
FORMAT = 1
# Per entry, beyond its bytes: the key, the OrderedDict node, the template's list (measured, rounded up).
ENTRY_OVERHEAD = 512
# A known_at this far in the past is settled: a write in flight carries an older recording time than its commit.
SETTLED_AFTER = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Ask:
    """One question: which route, which negotiation, every parameter but the recording times, and those."""

    route: str
    negotiation_id: str
    params: tuple[Hashable, ...]
    known: tuple[dt.datetime, ...]
    # every time parameter was given (none defaulted to today or now): the answer can be settled
    explicit: bool = False


@dataclasses.dataclass(frozen=True)
class Found:
    body: bytes
    etag: str
    # about a closed past: the same question always gets these bytes
    settled: bool


class _Template:
    """Encoded bytes with the `"known_at":"..."` echoes cut out, to be spliced back per request."""

    __slots__ = ("pieces", "slots", "size", "etag")

    def __init__(self, body: bytes, echoes: list[bytes]) -> None:
        pieces: list[bytes] = []
        slots: list[int] = []
        last = 0
        for start, echo in sorted(_occurrences(body, dict.fromkeys(echoes))):
            if start >= last:
                pieces.append(body[last:start])
                slots.append(echoes.index(echo))
                last = start + len(echo)
        pieces.append(body[last:])
        self.pieces = tuple(pieces)
        self.slots = tuple(slots)
        self.size = sum(len(p) for p in pieces) + ENTRY_OVERHEAD
        self.etag = ""  # named after the key it is kept under (Answers._found), once

    def fill(self, echoes: list[bytes]) -> bytes:
        if not self.slots:
            return self.pieces[0]
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out += (echoes[slot], piece)
        return b"".join(out)


def _occurrences(body: bytes, needles: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Where each needle occurs in body (a regex of them was compiled anew for every `known_at`: now changes)."""
    for needle in needles:
        at = body.find(needle)
        while at != -1:
            yield at, needle
            at = body.find(needle, at + len(needle))


class AnswerLRU:
    """Least recently used entries go first once their bytes pass `max_bytes`; one lock, O(1) per step."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, _Template] = OrderedDict()
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, *, count_miss: bool = True) -> _Template | None:
        """The entry, counted as a hit; a miss is counted unless the caller only looks (it counts its own)."""
        with self._guard:
            found = self._entries.get(key)
            if found is None:
                self.misses += count_miss
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, value: _Template) -> None:
        if value.size > self.max_bytes:
            return
        with self._guard:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._entries[key] = value
            self.bytes += value.size
            while self.bytes > self.max_bytes:
                _, gone = self._entries.popitem(last=False)
                self.bytes -= gone.size


class _Cuts:
    """A folded state with what resolving a known_at to its cut needs, built once per state."""

    __slots__ = ("state", "high_water", "exact")

    def __init__(self, state: State) -> None:
        ledger = state._ledger
        self.state = state
        self.high_water = ledger.high_water[: state.size]
        # recording times went back: what was known at a time is not a prefix; key by the time itself
        self.exact = any(p < state.size for p in ledger.late)

    def cut(self, at: dt.datetime) -> Hashable:
        if self.exact:
            return ("at", at)
        return bisect.bisect_right(self.high_water, at)


Work = Callable[..., Any]


class Answers:
    """The answer cache of one process, and how a question finds its key."""

    def __init__(
        self, max_bytes: int, heads: StreamHeads | None, clock: Callable[[], dt.datetime], *, inline: bool = False,
    ) -> None:
        self.lru = AnswerLRU(max_bytes)
        self.inline = inline  # misses of a current state may be computed on the event loop (an SQLite store)
        self._heads = heads
        self._clock = clock
        self._cuts: dict[str, _Cuts] = {}
        self._guard = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.lru.max_bytes > 0

    def settled(self, ask: Ask) -> bool:
        now = self._clock()
        return ask.explicit and all(at <= now - SETTLED_AFTER for at in ask.known)

    def _current(self, sides: ReadSides, negotiation_id: str, min_position: int | None) -> _Cuts | None:
        """The state this process knows to be the stream's newest, with its cuts: the last one answers were computed
        from, or on a store read without I/O worth a thread the live state (the process's own appends are folded in
        as they commit: service/queries/live.py); else None (fold)."""
        heads = self._heads
        if heads is None or not heads.live or (min_position is not None and min_position > heads.position):
            return None
        cuts = self._cuts.get(negotiation_id)
        if cuts is not None and heads.version(stream_id(negotiation_id)) == cuts.state.version:
            return cuts
        if not self.inline or sides.has_replica:
            return None
        state = sides.primary.states.current(negotiation_id, min_position or 0)
        return None if state is None else self._remember(sides.primary, state)

    def _key(self, ask: Ask, cuts: _Cuts) -> tuple[Hashable, ...]:
        return (FORMAT, ask.route, ask.negotiation_id, ask.params, tuple(cuts.cut(at) for at in ask.known))

    def _found(self, ask: Ask, key: tuple[Hashable, ...], template: _Template, echoes: list[bytes]) -> Found:
        if not template.etag:
            template.etag = hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()
        return Found(template.fill(echoes), template.etag, self.settled(ask))

    def get(
        self, sides: ReadSides, ask: Ask, min_position: int | None, budget: Budget, work: Work, *args: Any,
        mark: Callable[[Any], None] = lambda _: None, **kwargs: Any,
    ) -> Found:
        """The encoded answer of `work(store, *args, **kwargs)`: from the cache, or computed and kept."""
        found = self.answer_now(sides, ask, min_position, work, *args, mark=mark, **kwargs)  # kept meanwhile?
        if found is not None:
            return found
        echoes = _echoes(ask)

        def compute(store: ReadStore, *args: Any, **kwargs: Any) -> Found:
            # what a hit would accept (this process's knowledge of the stream, covering min_position) a miss accepts too
            state = store.states.state(ask.negotiation_id, budget, heard_up_to=min_position or 0)
            return self._computed(store, state, ask, echoes, work, *args, **kwargs)

        return answer(sides, min_position, compute, *args, mark=mark, **kwargs)

    def answer_now(
        self, sides: ReadSides, ask: Ask, min_position: int | None, work: Work, *args: Any,
        mark: Callable[[Any], None] = lambda _: None, **kwargs: Any,
    ) -> Found | None:
        """The answer without leaving the calling thread (the event loop): the kept one, or one computed from memory
        when that costs no I/O worth a thread — the store is an SQLite file (`inline`), this process holds the
        stream's newest state, and every known_at of the question sees all of it (no refold of an earlier recording
        time). None: ask `get`, in a worker thread."""
        cuts = self._current(sides, ask.negotiation_id, min_position)
        if cuts is None:
            return None
        key = self._key(ask, cuts)
        echoes = _echoes(ask)
        template = self.lru.get(key, count_miss=False)  # a miss is counted where the answer is computed
        if template is not None:
            mark("replica" if sides.has_replica else "primary")
            return self._found(ask, key, template, echoes)
        if not self.inline or sides.has_replica or any(cuts.cut(at) != cuts.state.size for at in ask.known):
            return None
        mark("primary")
        return self._found(ask, key, self._fill(sides.primary, cuts.state, key, echoes, work, *args, **kwargs), echoes)

    def _computed(self, store: ReadStore, state: State, ask: Ask, echoes: list[bytes], work: Work, *args: Any, **kwargs: Any) -> Found:
        key = self._key(ask, self._remember(store, state))
        return self._found(ask, key, self._fill(store, state, key, echoes, work, *args, **kwargs), echoes)

    def _fill(
        self, store: ReadStore, state: State, key: tuple[Hashable, ...], echoes: list[bytes], work: Work, *args: Any, **kwargs: Any,
    ) -> _Template:
        """The template kept under `key`, or `work`'s answer computed from exactly `state`, encoded and kept."""
        template = self.lru.get(key)
        if template is None:
            pinned = dataclasses.replace(store, states=_Pinned(state))
            template = _Template(msgspec.json.encode(work(pinned, *args, **kwargs)), echoes)
            self.lru.put(key, template)
        return template

    def _remember(self, store: ReadStore, state: State) -> _Cuts:
        negotiation_id = state.negotiation_id or ""
        with self._guard:
            cuts = self._cuts.get(negotiation_id)
            if cuts is None or cuts.state.version != state.version:
                fresh = _Cuts(state)
                if cuts is None or cuts.state.version < state.version:
                    self._cuts[negotiation_id] = fresh
                cuts = fresh  # the key names exactly the state the answer is computed from
        if store.side == "primary" and self._heads is not None:
            self._heads.saw(stream_id(negotiation_id), state.version)
        return cuts


def _echoes(ask: Ask) -> list[bytes]:
    """The `"known_at":...` fields this request's answer echoes, as the cached template's slots take them."""
    return [b'"known_at":' + msgspec.json.encode(at) for at in ask.known]


class _Pinned:
    """LiveStates that always answers one folded state: the answer is computed from exactly what its key names."""

    def __init__(self, state: State) -> None:
        self._state = state

    def state(self, negotiation_id: str, time_limit: Any = None) -> State:
        return self._state
