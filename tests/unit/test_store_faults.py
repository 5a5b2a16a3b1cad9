"""Store faults are named by what an operator has to fix, and answered 503 with Retry-After."""

from __future__ import annotations

import sqlite3

import pytest
from eventsourcing.persistence import OperationalError

from events.errors import store_unavailable
from service.http.problems import problem_for


@pytest.mark.parametrize(
    ("error", "problem", "title"),
    [
        (OperationalError("attempt to write a readonly database"), "read_only", "Store read-only"),
        (OperationalError("cannot execute INSERT in a read-only transaction"), "read_only", "Store read-only"),
        (sqlite3.OperationalError("database or disk is full"), "full", "Store full"),
        (OperationalError('could not extend file "base/16384/16385": No space left on device'), "full", "Store full"),
        (OperationalError("disk I/O error"), "io_error", "Store I/O error"),
        (OperationalError("couldn't get a connection after 2.00 sec"), "unreachable", "Store unavailable"),
        (ConnectionRefusedError(111, "Connection refused"), "unreachable", "Store unavailable"),
    ],
)
def test_a_store_fault_is_named_and_answered_503_with_retry_after(error: Exception, problem: str, title: str) -> None:
    fault = store_unavailable(error)
    assert fault.problem == problem
    answer, headers = problem_for(fault)
    assert (answer.status, answer.title, headers["Retry-After"]) == (503, title, "2")
    assert "nothing was stored" in answer.detail and str(error) not in answer.detail  # hosts and paths stay in the log
