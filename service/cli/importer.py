"""Import JSON Lines of events: validate every line first, then store in batches, each event once."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import msgspec

from events.application import Appending, ParleyLog
from events.errors import IdempotencyKeyReusedError
from events.payloads import AnyEvent, NegotiationOpened
from service.http.problems import field_errors

BATCH = 500
_decode = msgspec.json.Decoder(AnyEvent).decode
_encode = msgspec.json.Encoder().encode


class BadLine(msgspec.Struct, frozen=True):
    line: int
    field: str
    reason: str


class ImportReport(msgspec.Struct, kw_only=True):
    negotiation_id: str
    lines: int = 0
    stored: int = 0
    already_there: int = 0
    skipped_invalid: int = 0
    bad: list[BadLine] = []


class ImportRefusedError(Exception):
    """Some lines are invalid and --skip-invalid was not given: nothing was stored."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{len(report.bad)} invalid line(s); nothing was stored")
        self.report = report


@contextmanager
def seekable(source: str | Path) -> Iterator[IO[bytes]]:
    """The file, or standard input spooled to a temporary file, so it can be read twice."""
    if str(source) == "-":
        import sys

        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            yield spool
    else:
        with open(source, "rb") as handle:
            yield handle


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    handle.seek(0)
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield number, line


def validate(handle: IO[bytes], report: ImportReport) -> None:
    """First pass: decode every line, keep only the errors (bounded memory)."""
    for number, line in _lines(handle):
        report.lines += 1
        try:
            _decode(line)
        except RecursionError:
            report.bad.append(BadLine(number, "$", "nested too deep"))
        except msgspec.ValidationError as error:
            problem = field_errors(error)[0]
            report.bad.append(BadLine(number, problem.field, problem.message))
        except msgspec.DecodeError as error:
            report.bad.append(BadLine(number, "$", f"not JSON: {error}"))


def event_keys(negotiation_id: str, events: list[AnyEvent], seen_content: dict[bytes, int]) -> list[str]:
    """A stable key per event: its content, and how many identical events came before it in the file."""
    keys = []
    for event in events:
        content = _encode(event)
        digest = hashlib.sha256(content).digest()
        occurrence = seen_content.get(digest, 0)
        seen_content[digest] = occurrence + 1
        keys.append(hashlib.sha256(negotiation_id.encode() + b"\n" + digest + str(occurrence).encode()).hexdigest())
    return keys


def valid_batches(handle: IO[bytes], bad_lines: set[int]) -> Iterator[list[AnyEvent]]:
    batch: list[AnyEvent] = []
    for number, line in _lines(handle):
        if number in bad_lines:
            continue
        batch.append(_decode(line))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


Sink = Callable[[list[AnyEvent], list[str]], tuple[int, int]]


def run_import(
    handle: IO[bytes],
    negotiation_id: str,
    sink: Sink,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Validate, then feed batches with their event keys to `sink`, which returns (stored, already there)."""
    report = ImportReport(negotiation_id=negotiation_id)
    validate(handle, report)
    if report.bad and not skip_invalid:
        raise ImportRefusedError(report)
    report.skipped_invalid = len(report.bad)
    bad_lines = {b.line for b in report.bad}
    seen_content: dict[bytes, int] = {}
    done = 0
    for batch in valid_batches(handle, bad_lines):
        keys = event_keys(negotiation_id, batch, seen_content)
        stored, already = sink(batch, keys)
        report.stored += stored
        report.already_there += already
        done += len(batch)
        if progress:
            progress(done, report.lines - report.skipped_invalid)
    return report


def local_sink(log: ParleyLog, negotiation_id: str, principal: str) -> Sink:
    """Store into the local event store; each event's key makes a re-import store nothing."""
    namespace = f"import:{negotiation_id}"

    def sink(batch: list[AnyEvent], keys: list[str]) -> tuple[int, int]:
        for _ in range(5):
            seen = log.seen_keys(namespace, keys)
            fresh = [(e, k) for e, k in zip(batch, keys, strict=True) if k not in seen]
            if fresh and isinstance(fresh[0][0], NegotiationOpened) and _exists(log, negotiation_id):
                seen.add(fresh[0][1])  # opened earlier by hand: count it as there
                fresh = fresh[1:]
            if not fresh:
                return 0, len(batch)
            try:
                log.record(
                    negotiation_id,
                    [e for e, _ in fresh],
                    principal=principal,
                    request_id=f"import-{keys[0][:16]}",
                    event_keys=[Appending(principal=namespace, key=k, request_hash=k) for _, k in fresh],
                )
            except IdempotencyKeyReusedError:
                continue  # a concurrent import stored some of them: look again
            return len(fresh), len(batch) - len(fresh)
        raise RuntimeError("the same events keep being imported concurrently")  # pragma: no cover

    return sink


def _exists(log: ParleyLog, negotiation_id: str) -> bool:
    from events.errors import NegotiationNotFoundError

    try:
        log.negotiation(negotiation_id)
    except NegotiationNotFoundError:
        return False
    return True


def remote_sink(client: Any, negotiation_id: str) -> Sink:
    """Store through a Parley server's API; a batch's Idempotency-Key derives from its events' keys."""

    def sink(batch: list[AnyEvent], keys: list[str]) -> tuple[int, int]:
        events = list(batch)
        if isinstance(events[0], NegotiationOpened):
            opened = events.pop(0)
            body = {"id": negotiation_id, "title": opened.title, "parties": list(opened.parties),
                    "description": opened.description, "occurred_on": opened.occurred_on.isoformat(),
                    "source": msgspec.to_builtins(opened.source) if opened.source else None, "topics": list(opened.topics)}
            response = client.post("/v1/negotiations", json=body, headers={"Idempotency-Key": f"import-{keys[0][:64]}"})
            if response.status_code not in (201, 409):
                response.raise_for_status()
        if not events:
            return 1, 0
        key = hashlib.sha256("".join(keys).encode()).hexdigest()
        response = client.post(
            f"/v1/negotiations/{negotiation_id}/events",
            content=_encode({"events": events}),
            headers={"Content-Type": "application/json", "Idempotency-Key": f"import-{key}"},
        )
        response.raise_for_status()
        return len(batch), 0

    return sink
