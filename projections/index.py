"""Sorted per-entity indexes that any prefix of the ledger can search, so a view never scans a history.

A `Version` is one payload an event has had: as recorded, then after each correction. It is visible
to a cut of the ledger (the records at positions below `cut`) when `created < cut <= superseded`.

A `Sorted` keeps an entity's versions in the order they were created (ledger order) and, for every
complete aligned block of LEAF * 2**level of them, an immutable copy of their keys sorted. The
versions below a cut are the blocks of the binary decomposition of their count plus a tail shorter
than LEAF (its keys kept sorted too), so the versions a view sees come out greatest key first by
bisecting each of O(log n) blocks at the view's bound and merging. `add` is amortised O(log n) (each
key is merged once per level, in C). Up to WHOLE versions, every complete leaf is also kept in one
sorted run, so a cut of all versions (a current-state or any-as_of query) bisects once. Published
runs never change and `created` is appended last, so a query on an older state stays exact while a
newer one is folded into the same ledger.

Keys are integers ordering by (occurred_on, starts_on, version), the creation index in the low bits.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import sys
from collections.abc import Iterator
from typing import Any

LEAF = 16
WHOLE = 4096  # versions of one entity kept in a single sorted run too (rebuilt every LEAF adds)
NEVER = sys.maxsize

_INDEX_BITS = 32
_VERSION_BITS = 40
_DAY_BITS = 22  # date.max.toordinal() < 2**22
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_VERSION_MAX = (1 << _VERSION_BITS) - 1
_START_SHIFT = _INDEX_BITS + _VERSION_BITS
_OCCURRED_SHIFT = _START_SHIFT + _DAY_BITS


def sort_key(occurred_on: dt.date, version: int, starts_on: dt.date | None = None) -> int:
    """Orders like (occurred_on, starts_on, version); world order when starts_on is left out."""
    start = starts_on.toordinal() if starts_on is not None else 0
    return (
        occurred_on.toordinal() << _OCCURRED_SHIFT
        | start << _START_SHIFT
        | min(max(version, 0), _VERSION_MAX) << _INDEX_BITS
    )


def bound(on: dt.date) -> int:
    """Keys below this occurred on or before `on`."""
    return (on.toordinal() + 1) << _OCCURRED_SHIFT


class Version:
    """One payload of one event (`fact`), visible to cuts in (created, superseded]."""

    __slots__ = ("created", "fact", "superseded")

    def __init__(self, fact: Any, created: int) -> None:
        self.fact = fact
        self.created = created
        self.superseded = NEVER


class Sorted:
    """The versions of one entity (or one facet of it), searchable by key below any cut."""

    __slots__ = ("_created", "_items", "_keys", "_levels", "_tail", "_whole")

    def __init__(self) -> None:
        self._items: list[Version] = []
        self._keys: list[int] = []
        self._created: list[int] = []
        self._levels: list[list[list[int]]] = []
        # every complete leaf sorted in one run, while that stays cheap: a cut of all versions
        # (the usual one) then bisects once instead of once per block
        self._whole: list[int] = []
        # the keys after the last complete leaf, sorted: (the first one's index, the keys). Replaced, never changed,
        # so a reader whose count it matches searches it with one bisect instead of sorting the tail per query.
        self._tail: tuple[int, list[int]] = (0, [])

    def __len__(self) -> int:
        return len(self._created)

    def add(self, key: int, version: Version) -> None:
        """Append a version created after every one already here."""
        i = len(self._items)
        self._items.append(version)
        self._keys.append(key | i)
        start, tail = self._tail
        if (i + 1) % LEAF:
            tail = tail.copy()
            bisect.insort(tail, key | i)
            self._tail = (start, tail)
        else:
            self._tail = (i + 1, [])
            run = sorted(self._keys[i + 1 - LEAF :])
            if i < WHOLE:
                self._whole = sorted(self._whole + run)  # two sorted runs: a linear merge
            level = 0
            while True:
                if level == len(self._levels):
                    self._levels.append([])
                blocks = self._levels[level]
                blocks.append(run)
                if len(blocks) % 2:
                    break
                run = sorted(blocks[-2] + run)
                level += 1
        # Published last: a reader counts only versions whose blocks are complete.
        self._created.append(version.created)

    def _runs(self, count: int) -> list[list[int]]:
        """Sorted runs of the keys of the first count // LEAF * LEAF versions."""
        leaves = count // LEAF
        whole = self._whole
        if len(whole) == leaves * LEAF:
            return [whole] if whole else []
        runs = []
        start = 0
        for level in range(leaves.bit_length() - 1, -1, -1):
            if leaves >> level & 1:
                runs.append(self._levels[level][start >> level])
                start += 1 << level
        return runs

    def below(self, cut: int, limit: int) -> Iterator[Version]:
        """Versions visible to `cut` with key below `limit`, greatest key first."""
        count = bisect.bisect_left(self._created, cut)
        if not count:
            return
        items = self._items
        full = count // LEAF * LEAF
        tail = self._sorted_tail(full, count, limit)
        if not full:  # no complete leaf: the few keys, sorted, are the only run
            for key in reversed(tail):
                version = items[key & _INDEX_MASK]
                if cut <= version.superseded:
                    yield version
            return
        # (-key, run, position): the greatest key not yet yielded from each run, on a heap.
        heap = []
        runs = []
        for run in self._runs(count):
            top = bisect.bisect_left(run, limit)
            if top:
                heap.append((-run[top - 1], len(runs), top - 1))
                runs.append(run)
        if tail:
            heap.append((-tail[-1], len(runs), len(tail) - 1))
            runs.append(tail)
        if len(heap) == 1:
            run = runs[0]
            for i in range(heap[0][2], -1, -1):
                version = items[run[i] & _INDEX_MASK]
                if cut <= version.superseded:
                    yield version
            return
        if len(heap) == 2:  # the usual case: the one sorted run of every leaf and the tail
            one, two = runs
            i, j = heap[0][2], heap[1][2]
            while i >= 0 and j >= 0:
                if one[i] > two[j]:
                    key = one[i]
                    i -= 1
                else:
                    key = two[j]
                    j -= 1
                version = items[key & _INDEX_MASK]
                if cut <= version.superseded:
                    yield version
            rest, k = (one, i) if i >= 0 else (two, j)
            for i in range(k, -1, -1):
                version = items[rest[i] & _INDEX_MASK]
                if cut <= version.superseded:
                    yield version
            return
        heapq.heapify(heap)
        while heap:
            key, source, position = heap[0]
            if position:
                run = runs[source]
                heapq.heapreplace(heap, (-run[position - 1], source, position - 1))
            else:
                heapq.heappop(heap)
            version = items[-key & _INDEX_MASK]
            if cut <= version.superseded:
                yield version

    def _sorted_tail(self, full: int, count: int, limit: int) -> list[int]:
        """The keys below `limit` of the versions in [full, count), sorted."""
        start, tail = self._tail
        if start == full and len(tail) == count - full:  # the kept tail is exactly these versions
            return tail[: bisect.bisect_left(tail, limit)]
        return sorted(k for k in self._keys[full:count] if k < limit)

    def first(self, cut: int, limit: int) -> Version | None:
        """The visible version with the greatest key below `limit`."""
        count = bisect.bisect_left(self._created, cut)
        if not count:
            return None
        start, tail = self._tail
        if count < LEAF and not start and len(tail) == count:  # most histories: no complete leaf, the tail kept
            top = bisect.bisect_left(tail, limit)
            if not top:
                return None
            version = self._items[tail[top - 1] & _INDEX_MASK]
            return version if cut <= version.superseded else next(self.below(cut, limit), None)
        # The greatest candidate of each run; only a superseded one needs the full walk.
        best = -1
        if count >= LEAF:
            for run in self._runs(count):
                top = bisect.bisect_left(run, limit)
                if top and run[top - 1] > best:
                    best = run[top - 1]
        full = count // LEAF * LEAF
        if start == full and len(tail) == count - full:
            top = bisect.bisect_left(tail, limit)
            if top and tail[top - 1] > best:
                best = tail[top - 1]
        else:
            for key in self._keys[full:count]:
                if best < key < limit:
                    best = key
        if best < 0:
            return None
        version = self._items[best & _INDEX_MASK]
        if cut <= version.superseded:
            return version
        return next(self.below(cut, limit), None)
