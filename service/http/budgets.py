"""What one request may make the server wait for: a body that stalls is cut off (408), and a client that leaves is no fault."""

from __future__ import annotations

from typing import Any

import anyio
from litestar.types import Message, Receive

from service.http.problems import FieldError, ProblemError

class BodyBudget:
    """Each piece of a request body must arrive within `seconds` of the last; a client that hangs up is marked on the scope."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def receive(self, receive: Receive, state: dict[str, Any]) -> Receive:
        """`receive`, cut off with a 408 when a piece takes longer than the budget; a disconnect is noted in `state`."""
        seconds = self.seconds

        async def receive_within_budget() -> Message:
            with anyio.move_on_after(seconds) as waited:
                message = await receive()
            if waited.cancelled_caught:
                message = f"no part of the request body arrived for {seconds:g} s"
                raise ProblemError(408, "Request timeout", message, [FieldError("body", message)], headers={"Connection": "close"})
            if message["type"] == "http.disconnect":
                state["client_gone"] = True
            return message

        return receive_within_budget
