"""Cooperative time limits: the budget a query's fold checks (projections.state.Budget), read from the monotonic clock.

Python cannot cancel a thread, so a query that must not run on for ever checks its `TimeLimit` between
units of work (every `CHECK_EVERY` events of a fold, between read models) and raises `QueryTimeoutError`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from events.errors import QueryTimeoutError
from projections.state import CHECK_EVERY, UNLIMITED, Budget

__all__ = ["CHECK_EVERY", "UNLIMITED", "Budget", "TimeLimit"]


@dataclasses.dataclass(frozen=True)
class TimeLimit:
    seconds: float
    expires: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def starting_now(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> TimeLimit:
        """A limit of `seconds` from now; 0 means none."""
        return cls(seconds, clock() + seconds if seconds > 0 else math.inf, clock)

    def check(self) -> None:
        if self.expires != math.inf and self.clock() > self.expires:
            raise QueryTimeoutError(self.seconds)

