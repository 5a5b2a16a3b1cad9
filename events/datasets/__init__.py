"""Datasets shipped inside the package, as JSON Lines of events in Parley's own format."""

from __future__ import annotations

from importlib import resources

import msgspec

from events.payloads import AnyEvent

_decode = msgspec.json.Decoder(AnyEvent).decode


def names() -> list[str]:
    return sorted(p.name.removesuffix(".jsonl") for p in resources.files(__name__).iterdir() if p.name.endswith(".jsonl"))


def load(name: str) -> list[AnyEvent]:
    """The events of a shipped dataset, in file order."""
    text = resources.files(__name__).joinpath(f"{name}.jsonl").read_bytes()
    return [_decode(line) for line in text.splitlines() if line.strip()]
