"""The corrections to Faust that exactness depends on, each specified on its own."""

from __future__ import annotations

import asyncio

import pytest
from faust.tables.recovery import RebalanceAgain, ServiceStopped
from mode import Service
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams import faust_fixes


def queue_with(flow: FlowControlEvent, *items: int) -> FlowControlQueue:
    queue: FlowControlQueue = FlowControlQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    for item in items:
        queue.put_nowait(item)
    return queue


def test_resuming_flow_that_is_running_keeps_the_queued_messages():
    faust_fixes.apply()

    async def run() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        queue = queue_with(flow, 8, 9, 10)  # fetched after the seek, waiting for the agent
        flow.resume()  # Faust's recovery calls this once more at its end
        return queue.qsize()

    assert asyncio.run(run()) == 3


def test_resuming_after_a_suspension_still_drops_what_was_queued_before_it():
    faust_fixes.apply()

    async def run() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        queue = queue_with(flow, 1, 2)
        flow.suspend()  # a rebalance: these messages may belong to revoked partitions
        flow.resume()
        return queue.qsize()

    assert asyncio.run(run()) == 0


class RecoveryLike(Service):
    """Just what Faust's ``Recovery._wait`` uses: mode's ``wait_first`` and the new-rebalance signal."""

    def __init__(self) -> None:
        super().__init__()
        self.signal_recovery_start = asyncio.Event()


def test_a_recovery_step_that_times_out_is_an_error_naming_it_not_a_stop():
    async def run() -> None:
        recovery = RecoveryLike()
        await faust_fixes.wait_recovery_step(recovery, asyncio.sleep(10), timeout=0.05)  # type: ignore[arg-type]

    with pytest.raises(faust_fixes.RecoveryStepTimeout, match="sleep"):
        asyncio.run(run())


def test_a_recovery_step_of_a_stopped_service_still_reads_as_a_stop():
    async def run() -> None:
        recovery = RecoveryLike()
        await recovery.stop()
        await faust_fixes.wait_recovery_step(recovery, asyncio.sleep(10), timeout=0.05)  # type: ignore[arg-type]

    with pytest.raises(ServiceStopped):
        asyncio.run(run())


def test_a_new_rebalance_during_a_recovery_step_still_restarts_the_recovery():
    async def run() -> None:
        recovery = RecoveryLike()
        recovery.signal_recovery_start.set()
        await faust_fixes.wait_recovery_step(recovery, asyncio.sleep(10), timeout=5)  # type: ignore[arg-type]

    with pytest.raises(RebalanceAgain):
        asyncio.run(run())


def test_a_recovery_step_that_finishes_in_time_returns():
    async def run() -> None:
        recovery = RecoveryLike()
        await faust_fixes.wait_recovery_step(recovery, asyncio.sleep(0.01), timeout=5)  # type: ignore[arg-type]

    asyncio.run(run())


class _Subscriptions:
    """aiokafka's subscription of one partition, as the livelock check walks to it."""

    def __init__(self, position: int | None) -> None:
        state = type("TopicPartitionState", (), {"has_valid_position": position is not None})()
        assignment = type("Assignment", (), {"state_value": lambda _self, tp: state})()
        self.subscription = type("Subscription", (), {"assignment": assignment})()


def _consumer_thread(position: int | None) -> object:
    consumer = type("Consumer", (), {})()
    consumer._fetcher = type("Fetcher", (), {})()
    consumer._fetcher._subscriptions = _Subscriptions(position)
    thread = type("Thread", (), {})()
    thread._ensure_consumer = lambda: consumer
    return thread


def test_the_livelock_check_skips_a_partition_just_assigned_instead_of_crashing(monkeypatch) -> None:
    from faust.types import TP

    from streams import faust_fixes

    checked: list[TP] = []
    monkeypatch.setattr(faust_fixes, "_faust_verify_event_path", lambda self, now, tp: checked.append(tp))
    tp = TP("lienthong.identity", 0)
    faust_fixes.verify_event_path(_consumer_thread(None), 0.0, tp)  # type: ignore[arg-type]
    assert checked == []  # no position yet: aiokafka would have asserted
    faust_fixes.verify_event_path(_consumer_thread(42), 0.0, tp)  # type: ignore[arg-type]
    assert checked == [tp]


def test_an_app_without_tables_still_assigns_a_partition_of_every_topic_to_one_worker():
    """A disk-state worker has no Faust table; faust-streaming would then pick round-robin."""
    import faust
    from faust.assignor import PartitionAssignor

    async def strategy() -> list[object]:
        faust_fixes.apply()
        app = faust.App("no-tables", broker="kafka://127.0.0.1:1", web_enabled=False, table_standby_replicas=0)
        assert not app.tables.changelog_topics
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return list(consumer._partition_assignment_strategy)
        finally:
            await consumer.stop()

    [assignor] = asyncio.run(strategy())
    assert isinstance(assignor, PartitionAssignor)  # Faust's co-partitioning assignor
