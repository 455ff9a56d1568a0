"""Seven corrections to faust-streaming (and mode) that exactly-once and liveness here depend on.

**Resuming flow must not drop messages** (issue 11, the "frozen" restarted
worker). ``app.flow_control.resume()`` (mode's ``FlowControlEvent``) empties
every stream queue it manages, the agent's included, each time it is called,
suspended or not. Faust's recovery calls it *after* it has resumed the event
partitions and sought them to their committed offsets
(``Recovery.on_recovery_completed``): records fetched in between were already
in the agent's queue, and their read offsets recorded. Measured on a restarted
worker (``LIENTHONG_DEBUG_CONSUMER``): on every partition the agent got the first
one or two messages after the committed offset, then the next 3-4 (the rest of
that fetch) vanished and it went on from the following offset; they were never
processed, the offsets after them were committed, and the city stayed short by
those batches for good, the worker idle with nothing left to fetch. The same
clearing hits a survivor taking over a dead worker's partitions (its own
partitions' queued messages are dropped at the end of the recovery).
:func:`resume_flow` clears the queues only when flow really was suspended (a
rebalance: what was queued before it is stale, and Faust cleared it already);
resuming flow that is running keeps what is queued.

**Seeking back to committed must cover partitions never committed** (the
takeover stall of issue 11). During a rebalance Faust drops records it has
already fetched (``Consumer.getmany`` stops when flow stops or the generation
changes, and skips partitions no longer active), and relies on seeking every
partition back to its committed offset when recovery ends. aiokafka's
``seek_to_committed`` seeks only partitions with a committed offset above 0;
a partition the group never committed (the dead worker was killed before its
first commit for it) kept the client position after the dropped records.
Measured on a stuck survivor (``LIENTHONG_DEBUG_CONSUMER``): aiokafka's position
equal to the highwater on exactly those partitions, Faust's read offset None,
nothing paused or buffered. :func:`seek_to_committed` seeks those partitions to
where the group starts reading (``consumer_auto_offset_reset``); what was
already applied is skipped by the fence.

**Flush must drain.** Before committing source offsets Faust calls
``producer.flush()``, which first drains its ``ProducerBuffer`` (messages queued
by ``send_soon``: every table changelog record) and then waits for the Kafka
client's acknowledgements. ``ProducerBuffer.flush`` gives up, however, as soon as
no message has been handed on for 0.1 s, even with messages still queued (seen
under CPU load). An offset can then be committed while the delta that records
its message is still in the buffer, and a SIGKILL at that moment loses the
message for good. :func:`drain` waits until the buffer is empty.

**A recovery step that times out is an error, not a stop.** Faust's
``Recovery._wait`` bounds each step of a recovery (flush, highwaters, offsets,
the seek back to committed offsets) by ``broker_request_timeout`` (90 s), but a
step that times out comes back from mode's ``wait_first`` like a stopped
service; Faust raises ``ServiceStopped`` and its recovery task leaves its loop
for good. The worker lives on with its partitions assigned and never processes
again: after ``on_rebalance_complete`` (the seek back is the last step), exactly
"partitions restored, then nothing", idle in ``select``. Not measured to happen
(the seek takes 1-2 s under load, issue 11), but nothing would say so.
:func:`wait_recovery_step` raises :class:`RecoveryStepTimeout` naming the step:
the app crashes and the worker exits 70 with that line (``streams.worker``),
instead of a silent freeze. A real stop and a new rebalance behave as before.

**Recovery must read to the real end.** Faust restores a table by reading its
changelog partitions up to their end offsets (``ListOffsets``, latest) and then
pauses them. The embedded broker (Tansu) reports some partitions' end offset
short of what a fetch returns (measured: 50 records read, end offset 49, and it
stays so). Recovery could then stop before the last delta of such a partition,
whose source offset is already committed, and that message would be lost to
the new owner. :func:`read_to_end` establishes each partition's end by fetching
from the reported end until the broker has nothing more, and recovery reads up
to that. (A guard against a measured broker defect; the stall of issue 11 was
the queue clearing above.)

**A worker's partitions of every event topic stay together, tables or not.**
faust-streaming gives the consumer its own assignor (which assigns partition
``P`` of every co-partitioned topic to one worker) only when the app has
changelog tables or standby replicas, and aiokafka's round-robin otherwise. A
worker with state on disk has no Faust table, and round-robin would give one
worker ``lienthong.identity`` partition 3 and another ``lienthong.insurance``
partition 3: each would keep half of partition 3's state, and the flags that
join them would be wrong. :func:`create_worker_consumer` always uses Faust's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from faust.tables.recovery import RebalanceAgain, Recovery, ServiceStopped
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from hubbase.kafka_security import side_reader
from hubbase.logs import get_logger

log = get_logger(__name__)

#: How long a fetch at the end of a partition waits for more before it counts as the end.
END_PROBE_WAIT_MS = 300
#: Largest record a probe must be able to fetch (deltas of full batches are ~200 KB).
END_PROBE_FETCH_BYTES = 16 * 1024 * 1024


async def drain(self: ProducerBuffer) -> None:
    """Flush every queued message: return only when the buffer is empty."""
    while self.size:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
        except TimeoutError:
            continue  # slow, not done: keep waiting while messages are queued


async def _seek_to_committed_or_start(consumer: Any, reset: str) -> Mapping[Any, int | None]:
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    never = [tp for tp, offset in committed.items() if not offset or offset <= 0]
    if never:
        if reset == "latest":
            await consumer.seek_to_end(*never)
        else:
            await consumer.seek_to_beginning(*never)
    return committed


async def seek_to_committed(self: AIOKafkaConsumerThread) -> Mapping[TP, int]:
    """Seek every partition to its committed offset, or to the start if it has none."""
    reset = str(self.app.conf.consumer_auto_offset_reset)
    return await self.call_thread(_seek_to_committed_or_start, self._ensure_consumer(), reset)  # type: ignore[no-any-return]


class RecoveryStepTimeout(RuntimeError):
    """A step of Faust's table recovery did not finish within ``broker_request_timeout``."""


async def wait_recovery_step(self: Recovery, coro: Any, timeout: float | None = None) -> None:
    """Faust's ``Recovery._wait``: a timed-out step raises as such instead of reading as a stop."""
    signal = self.signal_recovery_start
    step = getattr(coro, "__qualname__", repr(coro))
    # mode types the waitable as its own Event and timeout without None; Faust passes both (as here)
    result = await self.wait_first(coro, signal, timeout=timeout)  # type: ignore[arg-type]
    if result.stopped:
        if self.should_stop:
            raise ServiceStopped()  # the service really stopped (or crashed)
        raise RecoveryStepTimeout(f"table recovery step {step} did not finish within {timeout} s")
    if signal in result.done:
        raise RebalanceAgain()  # another rebalance started


def resume_flow(self: FlowControlEvent) -> None:
    """Resume production into the queues; empty them only if flow was suspended."""
    was_suspended = self._suspend.is_set()
    self._suspend.clear()
    self._resume.set()
    if was_suspended:
        self.clear()


async def read_to_end(bootstrap: str, reported: Mapping[TP, int]) -> dict[TP, int]:
    """The end offset of each partition as a fetch sees it, starting from the ``reported`` one.

    Nobody else writes to a changelog partition its new owner is recovering (the
    old owner flushed before it gave the partition up, or is dead), so a fetch
    that finds nothing after the last record found is the end.
    """
    ends = dict(reported)
    consumer = await side_reader(bootstrap, fetch_wait_ms=END_PROBE_WAIT_MS, fetch_bytes=END_PROBE_FETCH_BYTES)
    try:
        by_tp = {TopicPartition(tp.topic, tp.partition): tp for tp in reported}
        consumer.assign(list(by_tp))
        for aiotp, tp in by_tp.items():
            consumer.seek(aiotp, max(0, reported[tp]))
        while True:
            batches = await consumer.getmany(timeout_ms=3 * END_PROBE_WAIT_MS)
            if not any(batches.values()):
                return ends
            for aiotp, records in batches.items():
                if records:
                    tp = by_tp[aiotp]
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        await consumer.stop()


def _bootstrap(recovery: Recovery) -> str:
    return ",".join(f"{url.host}:{url.port or 9092}" for url in recovery.app.conf.broker)


_faust_build_highwaters: Callable[..., Awaitable[None]] = Recovery._build_highwaters


async def build_highwaters(
    self: Recovery, consumer: Any, tps: set[TP], destination: Counter[TP], title: str
) -> None:
    """Faust's highwaters (last offset to read = end - 1), raised to the end a fetch sees."""
    await _faust_build_highwaters(self, consumer, tps, destination, title)
    if not tps:
        return
    reported = {tp: destination[tp] + 1 for tp in tps}
    ends = await read_to_end(_bootstrap(self), reported)
    short = {f"{tp.topic}/{tp.partition}": [reported[tp], end] for tp, end in ends.items() if end > reported[tp]}
    if short:
        # [reported end, end read]: the records in between would not have been restored
        log.warning("changelog_end_offset_short", partitions=short, title=title)
    for tp, end in ends.items():
        destination[tp] = end - 1


_faust_verify_event_path: Callable[[AIOKafkaConsumerThread, float, TP], None] = (
    AIOKafkaConsumerThread.verify_event_path)


def verify_event_path(self: AIOKafkaConsumerThread, now: float, tp: TP) -> None:
    """Faust's livelock check of one partition, skipped while aiokafka has no position for it.

    **The livelock detector must not crash a worker that is being assigned
    partitions.** Faust's commit livelock detector reads aiokafka's position of
    every assigned partition, and aiokafka *asserts* that there is one. A
    partition just assigned has none until it is reset or sought, so the check
    raised ``AssertionError`` and crashed the consumer, and the worker exited 70
    before it served anything. This was measured in CI: a worker starting beside
    another, `test_kills_at_random_points_of_a_backlog_always_end_exact[takeover-disk]`,
    under load. A partition with no position has nothing to verify yet.
    """
    try:
        subscription = self._ensure_consumer()._fetcher._subscriptions.subscription
        state = None if subscription is None else subscription.assignment.state_value(
            TopicPartition(tp.topic, tp.partition))
    except AttributeError:  # not started, or stopping: nothing to verify either
        return None
    if state is None or not state.has_valid_position:
        return None
    _faust_verify_event_path(self, now, tp)


_faust_create_worker_consumer: Callable[[AIOKafkaConsumerThread, Any], Any] = (
    AIOKafkaConsumerThread._create_worker_consumer)


def create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    """Faust's worker consumer, with Faust's co-partitioning assignor whatever tables the app has."""
    consumer = _faust_create_worker_consumer(self, transport)
    self._assignor = self.app.assignor
    consumer._partition_assignment_strategy = [self.app.assignor]
    return consumer


def apply() -> None:
    """Install the corrections into Faust and mode (idempotent)."""
    FlowControlEvent.resume = resume_flow  # type: ignore[method-assign]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    ProducerBuffer.flush = drain  # type: ignore[method-assign]
    Recovery._build_highwaters = build_highwaters  # type: ignore[method-assign]
    Recovery._wait = wait_recovery_step  # type: ignore[method-assign,assignment]
    AIOKafkaConsumerThread.verify_event_path = verify_event_path  # type: ignore[method-assign]
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
