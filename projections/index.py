"""Sorted per-entity indexes that any prefix of the ledger can search, so a view never scans a history.

A `Version` is one payload an event has had: as recorded, then after each correction. It is visible
to a cut of the ledger (the records at positions below `cut`) when `created < cut <= superseded`.

A `Sorted` keeps an entity's versions in the order they were created (ledger order) and, for every
complete aligned block of LEAF * 2**level of them, an immutable copy of their keys sorted. The
versions below a cut are the blocks of the binary decomposition of their count plus a tail shorter
than LEAF, so the versions a view sees come out greatest key first by bisecting each of O(log n)
blocks at the view's bound and merging. `add` is amortised O(log n) (each key is merged once per
level, in C). Published blocks never change and `created` is appended last, so a query on an older
state stays exact while a newer one is folded into the same ledger.

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

    __slots__ = ("fact", "created", "superseded")

    def __init__(self, fact: Any, created: int) -> None:
        self.fact = fact
        self.created = created
        self.superseded = NEVER


class Sorted:
    """The versions of one entity (or one facet of it), searchable by key below any cut."""

    __slots__ = ("_items", "_keys", "_created", "_levels")

    def __init__(self) -> None:
        self._items: list[Version] = []
        self._keys: list[int] = []
        self._created: list[int] = []
        self._levels: list[list[list[int]]] = []

    def __len__(self) -> int:
        return len(self._created)

    def add(self, key: int, version: Version) -> None:
        """Append a version created after every one already here."""
        i = len(self._items)
        self._items.append(version)
        self._keys.append(key | i)
        if (i + 1) % LEAF == 0:
            run = sorted(self._keys[i + 1 - LEAF :])
            level = 0
            while True:
                if level == len(self._levels):
                    self._levels.append([])
                blocks = self._levels[level]
                blocks.append(run)
                if len(blocks) % 2:
                    break
                run = sorted(blocks[-2] + run)  # two sorted runs: a linear merge
                level += 1
        # Published last: a reader counts only versions whose blocks are complete.
        self._created.append(version.created)

    def below(self, cut: int, limit: int) -> Iterator[Version]:
        """Versions visible to `cut` with key below `limit`, greatest key first."""
        count = bisect.bisect_left(self._created, cut)
        if not count:
            return
        leaves = count // LEAF
        sources: list[Iterator[int]] = []
        start = 0
        for level in range(leaves.bit_length() - 1, -1, -1):
            if leaves >> level & 1:
                block = self._levels[level][start >> level]
                start += 1 << level
                top = bisect.bisect_left(block, limit)
                if top:
                    sources.append(map(block.__getitem__, range(top - 1, -1, -1)))
        tail = sorted((k for k in self._keys[leaves * LEAF : count] if k < limit), reverse=True)
        if tail:
            sources.append(iter(tail))
        if not sources:
            return
        keys = sources[0] if len(sources) == 1 else heapq.merge(*sources, reverse=True)
        items = self._items
        for key in keys:
            version = items[key & _INDEX_MASK]
            if cut <= version.superseded:
                yield version

    def first(self, cut: int, limit: int) -> Version | None:
        """The visible version with the greatest key below `limit`."""
        return next(self.below(cut, limit), None)
