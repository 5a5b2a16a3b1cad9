"""Every shipped dataset holds to the record's rules: valid client events, sourced, official texts with their address."""

from __future__ import annotations

import importlib.resources
import json

import msgspec
import pytest

from events import datasets
from events.payloads import RESERVED_FIELDS, AnyEvent, CoverageDeclared, NegotiationOpened

NAMES = datasets.names()


def _lines(name: str) -> list[str]:
    text = importlib.resources.files("events.datasets").joinpath(f"{name}.jsonl").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def test_both_negotiations_ship() -> None:
    assert {"us-china-trade-2025", "us-eu-trade-2025"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_line_is_a_client_event_without_server_fields(name: str) -> None:
    for number, line in enumerate(_lines(name), start=1):
        try:
            msgspec.json.decode(line, type=AnyEvent)
        except msgspec.ValidationError as error:  # pragma: no cover - the failure message
            pytest.fail(f"{name} line {number}: {error}")
        assert not RESERVED_FIELDS & json.loads(line).keys(), f"{name} line {number} carries server fields"


@pytest.mark.parametrize("name", NAMES)
def test_opens_first_runs_in_world_order_and_declares_its_coverage_last(name: str) -> None:
    events = datasets.load(name)
    assert isinstance(events[0], NegotiationOpened)
    assert [e.occurred_on for e in events] == sorted(e.occurred_on for e in events)
    assert isinstance(events[-1], CoverageDeclared)
    assert events[-1].note


@pytest.mark.parametrize("name", NAMES)
def test_every_event_has_a_named_dated_graded_source(name: str) -> None:
    for number, event in enumerate(datasets.load(name), start=1):
        source = event.source
        assert source is not None, f"{name} line {number} has no source"
        assert source.name and source.published_at and source.kind, f"{name} line {number}: source needs name, kind, published_at"
        assert source.reliability and source.credibility, f"{name} line {number}: source is not graded"
        assert event.summary and event.confidence in ("high", "medium"), f"{name} line {number}: summary and confidence"


@pytest.mark.parametrize("name", NAMES)
def test_an_official_text_has_its_address(name: str) -> None:
    for number, event in enumerate(datasets.load(name), start=1):
        if event.source.kind == "official":
            assert event.source.url, f"{name} line {number}: an official text without its address ({event.source.title})"


@pytest.mark.parametrize("name", NAMES)
def test_high_confidence_means_an_official_text_or_two_independent_reports(name: str) -> None:
    """The record's rule: an official text (with its address), or a report confirmed by another (credibility 1, named).

    The coverage declaration is the curators' own word about the record, not a fact of the world."""
    for number, event in enumerate(datasets.load(name), start=1):
        if event.confidence != "high" or isinstance(event, CoverageDeclared):
            continue
        source = event.source
        official = source.kind == "official" and source.url
        confirmed = source.credibility == 1 and any(word in (event.summary or "") for word in ("Also ", "Confirmed", "confirmed", "also "))
        assert official or confirmed, f"{name} line {number}: high confidence needs an official text or a named second report"
