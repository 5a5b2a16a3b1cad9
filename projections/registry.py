"""Read models register themselves here: what each folds, how it files its entities, its part in state answers.

A read model's module calls `register(ReadModel(...))` once; nothing else lists read models. The fold
(projections/state.py) files each event under the model that folds its type, and the query layer
builds state answers, `/state/{part}`, diffs and corroboration from the registry. Every event type
is folded by a read model or declared `not_folded` with the reason (a test checks both).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from events.payloads import (
    Event,
    EventCorrected,
    EventRetracted,
    KeyCreated,
    KeyRevoked,
    NegotiationOpened,
)
from projections.index import Sorted, Version


def _as_is(answer: Any) -> Any:
    return answer


@dataclasses.dataclass(frozen=True)
class ReadModel:
    # the part's name in state answers and /state/{name}; or, for a model with no part, its own name
    name: str
    folds: tuple[type[Event], ...]
    # (view, legal_basis) -> the part; None: not a part of state answers (it has its own route or use)
    answer: Callable[[Any, str | None], Any] | None = None
    # the part's type, for the API's schema
    answer_type: Any = None
    # the entity an event files under (its id); None: the model reads its types in stream order instead
    entity: Callable[[Any], str | None] | None = None
    # a new entity's index, and how a version goes into it (default: a Sorted in world order)
    index: Callable[[], Any] = Sorted
    file: Callable[[Any, Version], None] | None = None
    # the field naming each listed item's stable id, and where the list is in the part's JSON (for diffs)
    id_field: str | None = None
    listed: Callable[[Any], Any] = _as_is
    # the same items in the typed part (its Struct), for corroboration; the part itself when it is one value
    items: Callable[[Any], Any] = _as_is
    # where the part comes in a state answer
    order: int = 100

    @property
    def is_part(self) -> bool:
        return self.answer is not None


_MODELS: dict[str, ReadModel] = {}
_NOT_FOLDED: dict[type[Event], str] = {}
_FILED: dict[type[Event], ReadModel] = {}
_discovered = False


def register(model: ReadModel) -> ReadModel:
    """Add a read model; an event type files under at most one model's entities."""
    if model.name in _MODELS and _MODELS[model.name] is not model:
        raise ValueError(f"a read model named {model.name!r} is already registered")
    if model.entity is not None:
        for kind in model.folds:
            other = _FILED.get(kind)
            if other is not None and other is not model:
                raise ValueError(f"{kind.__name__} is already filed under the {other.name!r} read model")
            _FILED[kind] = model
    _MODELS[model.name] = model
    return model


def not_folded(kind: type[Event], why: str) -> None:
    """Declare that no read model folds `kind`, and why."""
    _NOT_FOLDED[kind] = why


def _discover() -> None:
    """Import every module of the projections package once, so each registers its read model."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import projections

    for module in pkgutil.iter_modules(projections.__path__):
        importlib.import_module(f"projections.{module.name}")


def read_models() -> list[ReadModel]:
    _discover()
    return sorted(_MODELS.values(), key=lambda m: (m.order, m.name))


def parts() -> dict[str, ReadModel]:
    """The read models that are parts of state answers, in answer order."""
    return {m.name: m for m in read_models() if m.is_part}


def filed_under(kind: type[Event]) -> ReadModel | None:
    """The read model whose entities an event of this type files under, if any."""
    _discover()
    return _FILED.get(kind)


def folding(kind: type[Event]) -> list[ReadModel]:
    return [m for m in read_models() if kind in m.folds]


def why_not_folded(kind: type[Event]) -> str | None:
    _discover()
    return _NOT_FOLDED.get(kind)


not_folded(NegotiationOpened, "the negotiation's own title and parties: events/negotiation.py and projections.state.parties read it")
not_folded(EventCorrected, "an amendment: the fold applies it to the event it corrects")
not_folded(EventRetracted, "an amendment: the fold hides the event it retracts")
not_folded(KeyCreated, "the audit stream's, not a negotiation's")
not_folded(KeyRevoked, "the audit stream's, not a negotiation's")
