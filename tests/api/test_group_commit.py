"""Appends to different negotiations that arrive together share a commit; one's conflict fails no other."""

from __future__ import annotations

import concurrent.futures as futures
import datetime as dt
import threading
import time

import pytest

from eventsourcing.persistence import IntegrityError

from events.errors import VersionConflictError
from events.datastores import WriteTurn
from events.group_commit import Abandoned, GroupCommit
from events.payloads import DeadlineSet, NegotiationOpened
from service.followers.views import open_view_tables
from service.stores import open_log
from service.settings import Settings


def test_concurrent_appends_to_many_negotiations_all_land_and_a_stale_one_alone_fails(database_url):
    log = open_log(Settings(database_url=database_url))
    day = dt.date(2025, 5, 12)
    try:
        for n in range(8):
            log.record(f"n{n}", [NegotiationOpened(occurred_on=day, title=f"N{n}", parties=("US",))], principal="p", request_id="r")

        def append(job: tuple[int, int]) -> str:
            n, i = job
            expected = 0 if (n, i) == (0, 5) else None  # one stale If-Match among them
            try:
                log.record(f"n{n}", [DeadlineSet(occurred_on=day, deadline_id=f"d{i}", title="D", due_on=day)],
                           principal="p", request_id="r", expected_version=expected)
            except VersionConflictError:
                return "conflict"
            return "ok"

        with futures.ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(append, [(n, i) for i in range(25) for n in range(8)]))
        assert outcomes.count("conflict") == 1 and outcomes.count("ok") == 199
        for n in range(8):
            versions = [a.record.originator_version for a in log.stream(f"n{n}", after_version=0, limit=100)[0]]
            assert versions == list(range(1, len(versions) + 1))
            assert len(versions) == 26 - (n == 0)  # the opening and 25 appends; n0 lost its stale one
        report, _ = log.verify()
        assert report.ok and report.checked == 8 + 199
    finally:
        log.close()


@pytest.mark.parametrize("size", [1, 3])
def test_a_group_answers_each_request_with_its_own_positions(database_url, size):
    log = open_log(Settings(database_url=database_url))
    day = dt.date(2025, 5, 12)
    try:
        for n in range(4):
            log.record(f"g{n}", [NegotiationOpened(occurred_on=day, title="G", parties=("US",))], principal="p", request_id="r")

        def append(n: int) -> list[int]:
            done = log.record(f"g{n}", [DeadlineSet(occurred_on=day, deadline_id=f"d{k}", title="D", due_on=day) for k in range(size)],
                              principal="p", request_id="r")
            assert all(a.record.negotiation_id == f"g{n}" for a in done)
            return [a.position for a in done]

        with futures.ThreadPoolExecutor(4) as pool:
            positions = list(pool.map(append, range(4)))
        flat = [p for ps in positions for p in ps]
        assert len(set(flat)) == 4 * size
        for n, ps in enumerate(positions):
            assert [log.event(a.record.event_id).position for a in log.stream(f"g{n}", after_version=1, limit=10)[0]] == ps
    finally:
        log.close()


def test_two_writers_on_one_store_race_for_a_stream_and_every_append_lands(database_url):
    first, second = (open_log(Settings(database_url=database_url)) for _ in range(2))
    day = dt.date(2025, 5, 12)
    try:
        first.record("shared", [NegotiationOpened(occurred_on=day, title="S", parties=("US",))], principal="p", request_id="r")
        first.record("mine", [NegotiationOpened(occurred_on=day, title="M", parties=("US",))], principal="p", request_id="r")

        def append(job: tuple[int, int]) -> None:
            writer, i = job
            log = (first, second)[writer]
            # each writer's cache goes stale under the other's appends: the insert collides, is retried alone
            nid = "shared" if i % 2 else "mine"
            log.record(nid, [DeadlineSet(occurred_on=day, deadline_id=f"w{writer}-{i}", title="D", due_on=day)],
                       principal="p", request_id="r")

        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(append, [(w, i) for i in range(60) for w in range(2)]))
        for nid, count in (("shared", 61), ("mine", 61)):
            versions = [a.record.originator_version for a in first.stream(nid, after_version=0, limit=1000)[0]]
            assert versions == list(range(1, count + 1))
        assert first.verify()[0].ok
    finally:
        first.close()
        second.close()


def test_appends_to_one_stream_share_commits_instead_of_waiting_for_each_other(database_url):
    """Each is decided on the one before it while that one waits for its commit; all land, in order, exactly once."""
    log = open_log(Settings(database_url=database_url))
    day = dt.date(2025, 5, 12)
    commits: list[int] = []
    try:
        log.record("one", [NegotiationOpened(occurred_on=day, title="One", parties=("US",))], principal="p", request_id="r")
        log.append_listeners.append(commits.append)

        def append(i: int) -> int:
            return log.record("one", [DeadlineSet(occurred_on=day, deadline_id=f"d{i}", title="D", due_on=day)],
                              principal="p", request_id="r")[0].record.originator_version

        with futures.ThreadPoolExecutor(16) as pool:
            versions = list(pool.map(append, range(160)))
        assert sorted(versions) == list(range(2, 162))
        assert sum(commits) == 160 and len(commits) < 160, commits
        stored = log.stream("one", after_version=0, limit=1000)[0]
        assert [a.record.originator_version for a in stored] == list(range(1, 162))
        assert sorted(a.record.event.deadline_id for a in stored[1:]) == sorted(f"d{i}" for i in range(160))
        assert log.verify()[0].ok
    finally:
        log.close()


class _Store:
    """A hand-written stand-in for the log's save: refuses the records it is told to, keeps the rest in order."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse, self.saved = refuse, []

    def __call__(self, *records, idempotency=(), hashes=None):
        if self.refuse & set(records):
            raise IntegrityError("taken")
        self.saved += records
        return list(records)


def test_an_append_decided_on_one_that_fails_is_abandoned_and_never_written():
    store = _Store(refuse={"a"})
    group = GroupCommit(store)
    first = group.submit(["a"], [])
    second = group.submit(["b"], [], after=first)
    third = group.submit(["c"], [], after=second)
    other = group.submit(["x"], [])  # another stream's: not decided on them, written
    with pytest.raises(IntegrityError):
        first.result()
    for abandoned in (second, third):
        with pytest.raises(Abandoned):
            abandoned.result()
    assert other.result()[0] == ["x"] and store.saved == ["x"]


def test_an_append_decided_on_one_that_commits_is_written_after_it_and_told_in_order():
    store, told = _Store(refuse=set()), []
    group = GroupCommit(store)
    pendings = []
    for name in "abc":
        pendings.append(group.submit([name], [], after=pendings[-1] if pendings else None, on_commit=lambda n=name: told.append(n)))
    assert [p.result()[0] for p in pendings] == [["a"], ["b"], ["c"]]
    assert store.saved == ["a", "b", "c"] and told == ["a", "b", "c"]


def test_appends_that_lose_a_race_leave_no_event_ids_behind_in_the_stream(database_url):
    """A failed append was folded ahead of its commit; the ids it named are gone from the stream's state again."""
    first, second = (open_log(Settings(database_url=database_url)) for _ in range(2))
    day = dt.date(2025, 5, 12)
    try:
        first.record("raced", [NegotiationOpened(occurred_on=day, title="R", parties=("US",))], principal="p", request_id="r")

        def append(job: tuple[int, int]) -> None:
            writer, i = job
            (first, second)[writer].record("raced", [DeadlineSet(occurred_on=day, deadline_id=f"w{writer}-{i}", title="D", due_on=day)],
                                            principal="p", request_id="r")

        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(append, [(w, i) for i in range(40) for w in range(2)]))
        stored = {a.record.event_id for a in first.stream("raced", after_version=0, limit=1000)[0]}
        assert len(stored) == 81
        for log in (first, second):
            assert set(log.negotiation("raced").types) == stored
    finally:
        first.close()
        second.close()


def test_on_one_sqlite_file_an_append_waiting_to_write_goes_before_a_view_waiting_longer(tmp_path):
    """The log's commits take the file's write turn before the followers' batches: a client waits on the former."""
    log = open_log(Settings(database_url=str(tmp_path / "parley.db")))
    views = open_view_tables(log)
    day = dt.date(2025, 5, 12)
    try:
        log.record("n", [NegotiationOpened(occurred_on=day, title="N", parties=("US",))], principal="p", request_id="r")
        holding, release = threading.Event(), threading.Event()
        heads_seen_by_the_view: list[int] = []

        def hold_the_turn() -> None:
            with views.datastore.transaction(commit=True):  # type: ignore[attr-defined]
                holding.set()
                release.wait(10)

        def view_batch() -> None:
            with views.datastore.transaction(commit=True):  # type: ignore[attr-defined]
                heads_seen_by_the_view.append(log.head())

        def append() -> None:
            log.record("n", [DeadlineSet(occurred_on=day, deadline_id="d", title="D", due_on=day)], principal="p", request_id="r")

        holder = threading.Thread(target=hold_the_turn)
        holder.start()
        assert holding.wait(10)
        view = threading.Thread(target=view_batch)
        view.start()
        time.sleep(0.2)  # the view's batch has been waiting for the turn for a while
        appender = threading.Thread(target=append)
        appender.start()
        time.sleep(0.2)
        assert log.head() == 1 and heads_seen_by_the_view == []
        release.set()
        for thread in (holder, view, appender):
            thread.join(10)
        assert heads_seen_by_the_view == [2]  # when the view got the turn, the append had committed
    finally:
        views.datastore.close()  # type: ignore[attr-defined]
        log.close()


def test_the_write_turn_is_reentrant_gives_up_after_its_timeout_and_lets_others_in_between_first_writers():
    turn = WriteTurn()
    assert turn.acquire() and turn.acquire(first=True)  # the holder may take it again
    taken: list[str] = []
    other = threading.Thread(target=lambda: taken.append("timeout" if not turn.acquire(timeout=0.1) else "taken"))
    other.start()
    other.join(5)
    assert taken == ["timeout"]
    turn.release()
    turn.release()
    # free again, with no writer that goes first waiting: an ordinary writer gets it at once
    assert turn.acquire(timeout=0.1)
    turn.release()
