"""Event-time timers (streams/timers.py): the same subjects come due, in the same order,
whether every pending timer is in a heap (state in memory) or only the earliest are (on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import timers
from streams.state import Change, PartitionState
from streams.store import DiskPartitionState, PartitionDB
from streams.stores import PENDING
from streams.timers import Timers

#: One message: timers asked for (deadline, subject), then the watermark it moves to.
MESSAGE = st.tuples(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 60)), max_size=12),
                    st.integers(0, 40))


def run(state: PartitionState, messages: list[tuple[list[tuple[int, int]], int]], budget: int) -> list[list[str]]:
    """Each message's due subjects, one change per message (watermark steps up by the given amount)."""
    rule, due, watermark = Timers("SYNC_MISSING"), [], 0
    for offset, (asks, step) in enumerate(messages):
        change = Change(state, "t", offset, deadline_step=budget)
        for deadline, subject in asks:
            rule.notify_at(change, watermark + deadline, f"citizen-{subject}", watermark)
        watermark += step
        due.append(list(rule.due(change, watermark)))
        change.commit()
    return due


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(MESSAGE, max_size=40), st.integers(1, 8))
def test_timers_on_disk_come_due_as_timers_in_memory(tmp_path_factory: pytest.TempPathFactory,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     messages: list[tuple[list[tuple[int, int]], int]],
                                                     budget: int) -> None:
    monkeypatch.setattr(timers, "NEAR_TIMERS", 3)  # refills and trims all the time
    on_disk = DiskPartitionState(0, PartitionDB(tmp_path_factory.mktemp("p") / "p0"), stores=(PENDING,))
    try:
        assert run(PartitionState(0, (PENDING,)), messages, budget) == run(on_disk, messages, budget)
    finally:
        on_disk.db.close()


def test_a_disk_queue_holds_only_the_earliest_timers(tmp_path: Path) -> None:
    """100,000 pending timers; the heap in memory holds about NEAR_TIMERS of them."""
    state = DiskPartitionState(0, PartitionDB(tmp_path / "p0"), stores=(PENDING,))
    rule = Timers("SYNC_MISSING")
    for offset in range(10):
        change = Change(state, "t", offset)
        for n in range(10_000):
            rule.notify_at(change, 1_000 + offset * 10_000 + n, f"citizen-{offset}-{n}", 0)
        change.commit()
    change = Change(state, "t", 10, deadline_step=10)
    assert list(rule.due(change, 1_005)) == [f"citizen-0-{n}" for n in range(5)]
    queue = state.indexes["SYNC_MISSING|"]
    assert len(queue.heap) <= 2 * timers.NEAR_TIMERS
    state.db.close()
