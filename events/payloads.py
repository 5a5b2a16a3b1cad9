"""The event catalogue: one msgspec Struct per event type, tagged by a stable snake_case `type`."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta, Struct

# --- constrained scalars -------------------------------------------------------------

Slug = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$",
        description="Lower-case identifier: letters, digits, '.', '_' or '-', at most 100 characters.",
        examples=["us-ieepa-fentanyl-cn"],
    ),
]
PartyCode = Annotated[
    str,
    Meta(
        pattern=r"^[A-Z][A-Z0-9_-]{0,15}$",
        description="Short upper-case code of a party, e.g. US, CN, EU.",
        examples=["US"],
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Text = Annotated[str, Meta(min_length=1, max_length=4000)]
Url = Annotated[str, Meta(pattern=r"^https?://[^\s]+$", max_length=2000)]
Percent = Annotated[float, Meta(ge=0, le=10000, description="Ad valorem rate in percent.")]
Tags = Annotated[tuple[Slug, ...], Meta(max_length=32)]
TimeZone = Annotated[str, Meta(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Stockholm")]

# The one range of world dates the service accepts, in bodies and in query parameters alike.
FIRST_WORLD_DATE, LAST_WORLD_DATE = dt.date(1800, 1, 1), dt.date(2999, 12, 31)
WORLD_DATE_RANGE = f"between {FIRST_WORLD_DATE} and {LAST_WORLD_DATE}"
WorldDate = Annotated[
    dt.date,
    Meta(description=f"A date YYYY-MM-DD {WORLD_DATE_RANGE}.", extra_json_schema={"pattern": r"^(1[89]|2[0-9])[0-9]{2}-"}),
]

Reliability = Literal["A", "B", "C", "D", "E", "F"]
Credibility = Annotated[int, Meta(ge=1, le=6)]
MeasureKind = Literal[
    "tariff",
    "export_control",
    "import_control",
    "entity_listing",
    "sanction",
    "exit_ban",
    "port_fee",
    "investment_restriction",
    "other",
]
MeasureStatus = Literal["threatened", "announced", "in_force", "suspended", "removed", "expired", "invalidated"]
IssueStatus = Literal["open", "in_negotiation", "stalled", "awaiting_approval", "resolved", "dropped"]
DeadlineEnds = Annotated[
    Literal["start_of_day", "end_of_day"],
    Meta(
        description="How due_on ends the deadline. start_of_day: 'until 12:01 a.m. on due_on', so due_on is the first day "
        "after it (the executive-order form); end_of_day: due_on is the last day within it (the default)."
    ),
]
# The applies_to of a measure on every destination (a party's export controls on all countries, a global surcharge).
ALL_DESTINATIONS = "ALL"
Stance = Literal["positive", "neutral", "negative", "demand", "threat", "denial"]


class RuleViolation(msgspec.ValidationError):
    """A payload that is well-formed but breaks a rule; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{message} - at `$.{field}`")
        self.field = field
        self.reason = message


def check_values(struct: Struct, path: str = "") -> None:
    """No NUL characters (PostgreSQL text rejects them, some clients choke) and world dates in range, in every
    value, nested ones included: checked from the event, so a broken rule names its full path (`source.published_at`)."""
    for name in struct.__struct_fields__:
        _check_value(getattr(struct, name), f"{path}{name}")


def _check_value(value: object, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise RuleViolation(path, "must not contain NUL characters")
    elif isinstance(value, dt.date):
        if not FIRST_WORLD_DATE <= value <= LAST_WORLD_DATE:
            raise RuleViolation(path, f"must be {WORLD_DATE_RANGE}")
    elif isinstance(value, Part):
        check_values(value, f"{path}.")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, path)
            _check_value(item, f"{path}.{key}")


class Part(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of nested values (sources, people): strict; the event that holds one checks its values."""


class Source(Part, kw_only=True):
    """Where a report came from, graded on the Admiralty scale."""

    name: Name
    id: Slug | None = None
    kind: Literal["official", "wire", "newspaper", "analyst", "social", "other"] | None = None
    title: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    url: Url | None = None
    published_at: WorldDate | None = None
    reliability: Reliability | None = None
    credibility: Credibility | None = None


class Person(Part, kw_only=True):
    name: Name
    role: Name | None = None
    party: PartyCode | None = None


class Claim(Part, kw_only=True):
    """A structured claim a statement makes, e.g. subject `truce.extension`, value `agreed`."""

    subject: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
    value: Annotated[str, Meta(min_length=1, max_length=200)]


class Suspension(Part, kw_only=True):
    """One measure a truce suspends, and the rate that applies when the suspension lapses."""

    measure_id: Slug
    lapse_rate_pct: Annotated[Percent, Meta(description="The rate in force from the day the suspension lapses.")] | None = None
    suspended_points: Annotated[Percent, Meta(description="How many percentage points are suspended.")] | None = None


class Organisation(Part, kw_only=True):
    """A party to an agreement that is not a state: a company, an investor, a regulator."""

    name: Name
    kind: Literal["company", "investor", "government_body", "organisation", "person"] | None = None
    party: PartyCode | None = None
    role: Name | None = None


# --- the envelope every event shares --------------------------------------------------


class Event(
    Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="type",
):
    """Fields every event carries: when it happened in the world and who reported it."""

    occurred_on: Annotated[WorldDate, Meta(description="World date when it was said or done.")]
    occurred_time: dt.time | None = None
    time_zone: TimeZone | None = None
    date_precision: Literal["day", "month", "year"] = "day"
    source: Source | None = None
    summary: Text | None = None
    topics: Tags = ()
    confidence: Literal["high", "medium", "low"] | None = None

    def __post_init__(self) -> None:
        check_values(self)
        if self.time_zone is not None:
            try:
                zoneinfo.ZoneInfo(self.time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise RuleViolation("time_zone", f"unknown IANA time zone {self.time_zone!r}") from None

    @property
    def type(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]


def _ordered(struct: Event, first: str, last: str) -> None:
    start, end = getattr(struct, first), getattr(struct, last)
    if start is not None and end is not None and end < start:
        raise RuleViolation(last, f"must be on or after {first} ({start.isoformat()})")


# --- the catalogue ----------------------------------------------------------------------


class NegotiationOpened(Event, tag="negotiation_opened", kw_only=True):
    title: Name
    parties: Annotated[tuple[PartyCode, ...], Meta(min_length=1, max_length=50)]
    description: Text | None = None


class _Round(Event, kw_only=True):
    round_id: Slug
    name: Name
    location: Name | None = None
    starts_on: WorldDate
    ends_on: WorldDate | None = None
    delegations: dict[PartyCode, tuple[Person, ...]] = {}
    outcome: Text | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _ordered(self, "starts_on", "ends_on")


class RoundScheduled(_Round, tag="round_scheduled", kw_only=True):
    pass


class RoundHeld(_Round, tag="round_held", kw_only=True):
    pass


class StatementMade(Event, tag="statement_made", kw_only=True):
    speaker: Person
    quote: Text | None = None
    paraphrase: Text | None = None
    stance: Stance | None = None
    about: Tags = ()
    claim: Claim | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quote is None and self.paraphrase is None:
            raise RuleViolation("quote", "a statement needs a quote or a paraphrase")


class _Position(Event, kw_only=True):
    by: PartyCode
    to: PartyCode | None = None
    issue_id: Slug | None = None
    measure_id: Slug | None = None
    text: Text


class DemandMade(_Position, tag="demand_made", kw_only=True):
    pass


class ConcessionMade(_Position, tag="concession_made", kw_only=True):
    pass


class MeasureChanged(Event, tag="measure_changed", kw_only=True):
    measure_id: Slug
    kind: MeasureKind
    status: MeasureStatus
    imposed_by: PartyCode
    applies_to: PartyCode
    name: Name | None = None
    legal_basis: Name | None = None
    rate_pct: Percent | None = None
    scope: Text | None = None
    effective_from: WorldDate | None = None
    effective_until: WorldDate | None = None
    until_deadline: Slug | None = None
    coverage: Annotated[
        Literal["all", "partial"],
        Meta(description="all: every good from applies_to (counted in a direction's total); partial: listed products only."),
    ] = "all"
    rate_kind: Annotated[
        Literal["additional", "all_inclusive"],
        Meta(
            description="additional: rate_pct is added to the ordinary (MFN) duty; all_inclusive: rate_pct is the whole duty "
            "including MFN (goods whose MFN is below it pay up to it, goods at or above it pay MFN alone)."
        ),
    ] = "additional"
    lapse_rate_pct: Annotated[
        Percent,
        Meta(description="A suspension's rate on lapse: in force from the day after the suspension ends, unless a later act says otherwise."),
    ] | None = None
    suspended_points: Annotated[Percent, Meta(description="How many percentage points a suspension takes off.")] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _ordered(self, "effective_from", "effective_until")
        if self.rate_pct is not None and self.kind not in ("tariff", "port_fee"):
            raise RuleViolation("rate_pct", "only tariffs and port fees carry a rate")
        for field in ("lapse_rate_pct", "suspended_points"):
            if getattr(self, field) is not None and self.status != "suspended":
                raise RuleViolation(field, "only a suspension (status suspended) names a rate on lapse or points suspended")
        if self.lapse_rate_pct is not None:
            if self.kind not in ("tariff", "port_fee"):
                raise RuleViolation("lapse_rate_pct", "only tariffs and port fees carry a rate")
            if self.until_deadline is None and self.effective_until is None:
                raise RuleViolation("lapse_rate_pct", "a suspension lapses when it ends: give until_deadline or effective_until")


class ExemptionGranted(Event, tag="exemption_granted", kw_only=True):
    """Products taken out of a measure from a date (a carve-out), leaving the rest of it in force."""

    measure_id: Slug
    exemption_id: Slug
    description: Text
    effective_from: WorldDate | None = None
    effective_until: WorldDate | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _ordered(self, "effective_from", "effective_until")


class _Truce(Event, kw_only=True):
    truce_id: Slug
    parties: Annotated[tuple[PartyCode, ...], Meta(max_length=50)] = ()
    terms: Text | None = None
    effective_from: WorldDate | None = None
    deadline_id: Slug | None = None
    suspends: Annotated[
        tuple[Slug | Suspension, ...],
        Meta(max_length=32, description="Measure ids, or {measure_id, lapse_rate_pct, suspended_points} to name the rate on lapse."),
    ] = ()

    @property
    def suspended_ids(self) -> tuple[str, ...]:
        return tuple(s if isinstance(s, str) else s.measure_id for s in self.suspends)


class TruceAgreed(_Truce, tag="truce_agreed", kw_only=True):
    pass


class TruceExtended(_Truce, tag="truce_extended", kw_only=True):
    pass


class TruceEnded(_Truce, tag="truce_ended", kw_only=True):
    pass


class DeadlineSet(Event, tag="deadline_set", kw_only=True):
    deadline_id: Slug
    title: Name
    due_on: WorldDate
    ends: DeadlineEnds | None = None
    consequence: Text | None = None


class DeadlineExtended(Event, tag="deadline_extended", kw_only=True):
    deadline_id: Slug
    due_on: WorldDate
    ends: Annotated[DeadlineEnds, Meta(description="How the new due_on ends the deadline; default: as the deadline was set.")] | None = None
    reason: Text | None = None
    consequence: Annotated[Text, Meta(description="What happens at the new date, where it differs from before.")] | None = None


class DeadlineResolved(Event, tag="deadline_resolved", kw_only=True):
    deadline_id: Slug
    outcome: Text


class IssueRaised(Event, tag="issue_raised", kw_only=True):
    issue_id: Slug
    title: Name
    category: Slug | None = None
    status: IssueStatus = "open"
    text: Text | None = None


class IssueUpdated(Event, tag="issue_updated", kw_only=True):
    issue_id: Slug
    status: IssueStatus | None = None
    title: Name | None = None
    text: Text | None = None


class AgreementReached(Event, tag="agreement_reached", kw_only=True):
    agreement_id: Slug
    title: Name
    parties: Annotated[
        tuple[PartyCode | Organisation, ...],
        Meta(max_length=50, description="Party codes, or {name, kind, party, role} for companies and other organisations."),
    ] = ()
    terms: Text | None = None
    signed_on: WorldDate | None = None


class CoverageDeclared(Event, tag="coverage_declared", kw_only=True):
    """A curator's word that the negotiation's record is kept complete through a date."""

    record_through: Annotated[WorldDate, Meta(description="The last day the record is kept complete for.")]
    note: Text | None = None


EventId = Annotated[
    str,
    Meta(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="An event_id (lower-case UUID).",
    ),
]

Fact = Union[
    NegotiationOpened,
    RoundScheduled,
    RoundHeld,
    StatementMade,
    DemandMade,
    ConcessionMade,
    MeasureChanged,
    TruceAgreed,
    TruceExtended,
    TruceEnded,
    DeadlineSet,
    DeadlineExtended,
    DeadlineResolved,
    IssueRaised,
    IssueUpdated,
    AgreementReached,
    ExemptionGranted,
    CoverageDeclared,
]


class EventCorrected(Event, tag="event_corrected", kw_only=True):
    target: EventId
    replacement: Fact
    reason: Text | None = None


class EventRetracted(Event, tag="event_retracted", kw_only=True):
    target: EventId
    reason: Text


AnyEvent = Union[Fact, EventCorrected, EventRetracted]


# --- system events: recorded by Parley itself in the audit stream, never sent by clients ---------

AUDIT_STREAM = "_audit"  # not a valid slug, so no client can open or address it


class KeyCreated(Event, tag="key_created", kw_only=True):
    key_id: Annotated[str, Meta(max_length=64)]
    name: Name
    role: Literal["reader", "reporter", "admin"]
    # SHA-256 of the key's at-rest digest: `verify` checks the keys table against it, and the log
    # never holds the digest itself. Keys created before it was recorded have none.
    fingerprint: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")] | None = None


class KeyRevoked(Event, tag="key_revoked", kw_only=True):
    key_id: Annotated[str, Meta(max_length=64)]
    name: Name


SystemEvent = Union[KeyCreated, KeyRevoked]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (*Fact.__args__, EventCorrected, EventRetracted)  # type: ignore[attr-defined]
}
CORRECTION_TYPES = frozenset({"event_corrected", "event_retracted"})

# Server-set names a client may never send.
RESERVED_FIELDS = frozenset(
    {
        "event_id",
        "negotiation_id",
        "version",
        "position",
        "recorded_at",
        "recorded_by",
        "request_id",
        "hash",
        "corrected_by",
        "retracted_by",
        "display",
    }
)

_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def reserved_field_in(message: str) -> str | None:
    """The reserved field a msgspec 'unknown field' error complains about, if any."""
    match = _UNKNOWN_FIELD.search(message)
    if match and match.group(1) in RESERVED_FIELDS:
        return match.group(1)
    return None
