"""Domain errors; each carries the ids it concerns and is translated to HTTP once, at the boundary."""

from __future__ import annotations


class ParleyError(Exception):
    """Base of every error Parley raises on purpose."""


class NegotiationNotFoundError(ParleyError):
    def __init__(self, negotiation_id: str) -> None:
        super().__init__(f"no negotiation {negotiation_id!r}")
        self.negotiation_id = negotiation_id


class NegotiationExistsError(ParleyError):
    def __init__(self, negotiation_id: str) -> None:
        super().__init__(f"negotiation {negotiation_id!r} already exists")
        self.negotiation_id = negotiation_id


class EventNotFoundError(ParleyError):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"no event {event_id!r}")
        self.event_id = event_id


class EventRejectedError(ParleyError):
    """A well-formed event that breaks a rule of the negotiation."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class VersionConflictError(ParleyError):
    def __init__(self, negotiation_id: str, expected: int, current: int) -> None:
        super().__init__(f"negotiation {negotiation_id!r} is at version {current}, not {expected}")
        self.negotiation_id = negotiation_id
        self.expected = expected
        self.current = current


class IdempotencyKeyReusedError(ParleyError):
    def __init__(self, key: str) -> None:
        super().__init__("this Idempotency-Key was already used with a different request")
        self.key = key


class StoreUnavailableError(ParleyError):
    """The database cannot be reached or written right now; `problem` says which: unreachable, read_only, full or io_error."""

    def __init__(self, message: str, problem: str = "unreachable") -> None:
        super().__init__(message)
        self.problem = problem


_PROBLEM_SIGNS = {
    "read_only": ("readonly database", "read-only", "read only", "permission denied"),
    "full": ("disk is full", "no space left", "file too large", "could not extend file", "disk full"),
    "io_error": ("disk i/o error", "input/output error"),
}


def store_unavailable(error: BaseException) -> StoreUnavailableError:
    """The store error a driver raised, named by what an operator has to fix."""
    text = str(error).lower()
    problem = next((name for name, signs in _PROBLEM_SIGNS.items() if any(sign in text for sign in signs)), "unreachable")
    return StoreUnavailableError(str(error), problem)


class KeyNameTakenError(ParleyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a key named {name!r} exists")
        self.name = name


class KeyNotFoundError(ParleyError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no key {key_id!r}")
        self.key_id = key_id


class QueryTimeoutError(ParleyError):
    """A query ran past its time limit and stopped at a check."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the answer took longer than the {seconds:g} s allowed")
        self.seconds = seconds


class EventUnreadableError(ParleyError):
    """A stored event this version cannot decode: written by a newer Parley (a type or field it does not know yet)."""

    def __init__(self, negotiation_id: str, version: int, event_type: str, reason: str) -> None:
        super().__init__(
            f"event {version} of {negotiation_id!r} has type {event_type!r}, which this server cannot read ({reason}); "
            "it was written by a newer Parley: retry (another replica may be upgraded) or upgrade this one"
        )
        self.negotiation_id = negotiation_id
        self.version = version
        self.event_type = event_type


class InvalidQueryError(ParleyError):
    """A query parameter that does not parse or is out of its range; `fields` names each culprit and why."""

    def __init__(self, field: str, reason: str, detail: str | None = None, *, fields: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(detail or f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.fields = fields or ((field, reason),)


class UnknownPartError(ParleyError):
    def __init__(self, part: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"no state part {part!r}; the parts are {', '.join(allowed)}")
        self.part = part
        self.allowed = allowed


class SourceNotFoundError(ParleyError):
    def __init__(self, source_id: str) -> None:
        super().__init__(f"no source {source_id!r}")
        self.source_id = source_id


class SourceExistsError(ParleyError):
    def __init__(self, source_id: str) -> None:
        super().__init__(f"a source {source_id!r} is already registered")
        self.source_id = source_id


class PositionNotRecordedError(ParleyError):
    """A `min_position` past the log's head: no write was ever answered with it, so waiting would not bring it."""

    def __init__(self, min_position: int, head: int) -> None:
        super().__init__(f"min_position: {min_position} is beyond the latest recorded position {head}")
        self.min_position = min_position
        self.head = head


class ViewBehindError(ParleyError):
    """A persisted view has not reached the position a read waits for within the wait allowed."""

    def __init__(self, view: str, min_position: int, at: int) -> None:
        super().__init__(f"the {view} view has not reached position {min_position} yet; retry shortly")
        self.view = view
        self.min_position = min_position
        self.at = at


class LogDamagedError(ParleyError):
    """The index names a head position whose event is not stored: the store was changed outside Parley."""

    def __init__(self, position: int) -> None:
        super().__init__(
            f"the log's head, position {position}, has no stored event: the store was changed outside Parley; "
            "GET /v1/audit/verify names what is wrong"
        )
        self.position = position


class PrincipalNotFoundError(ParleyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no key named {name!r} and nothing recorded by it")
        self.name = name
