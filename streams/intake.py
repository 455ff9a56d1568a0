"""Group intake: the event topics' messages straight from the consumer's fetch, taken in groups.

Why not Faust's stream. Faust hands every fetched record on one at a time:
the fetcher awaits ``wait_first(callback(message), suspend_flow)`` per record
(two tasks and an ``asyncio.wait`` each), the conductor builds an event and
queues it, the stream takes it, runs sensors and acks it. Measured on this
machine (docs/performance.md, issue 16) that machinery alone holds a worker
near 2,500 single-event messages per second, whatever the worker does with
them; ``stream.take_events()`` groups what comes out of it but does not make
it faster. A group commit needs the records as the fetch returned them.

How. :func:`install` replaces ``Consumer._drain_messages`` (Faust's fetch loop,
kept line for line otherwise) so that records of the topics a
:class:`GroupIntake` claims are collected per fetch and handed over in one
call; every other topic (the roll-up partials' merge agent) goes through Faust
as before. The worker's agent takes whatever is pending (up to
``group_messages``) as soon as it is free, so groups form by themselves: one
message at a time when traffic is light (no added latency), hundreds under a
backlog.

What stays Faust's. Subscription, assignment and rebalances (the agent still
subscribes to the event topics); read offsets and gaps (the same code); offset
commits, which follow acks: the agent acks a message (``Consumer.ack``) only
after the state change that covers it is written, as the stream did. The
intake is a flow-controlled queue of the app: a rebalance clears it with the
agents' queues, and Faust seeks every partition back to its committed offset,
so nothing queued before a rebalance is processed after it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.types import Message

#: The fetch loop waits while the intake holds this many groups' worth of messages
#: (fetched, not yet taken), or this many bytes of them (batched messages are ~200 KB each).
BACKLOG_GROUPS = 4
BACKLOG_BYTES = 16 * 1024 * 1024


class GroupIntake:
    """Pending messages of the event topics, in fetch order (so offset order per partition)."""

    def __init__(self, topics: Collection[str], group_messages: int) -> None:
        self.topics = frozenset(topics)
        self.group_messages = max(1, group_messages)
        self.limit = self.group_messages * BACKLOG_GROUPS
        self.limit_bytes = BACKLOG_BYTES
        self.pending: deque[Message] = deque()
        self.pending_bytes = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, messages: Sequence[Message]) -> None:
        """A fetch's records of the claimed topics (waits while the intake is full)."""
        while self._full():
            self._room.clear()
            await self._room.wait()
        self.pending.extend(messages)
        self.pending_bytes += sum(len(m.value or b"") for m in messages)
        self._arrived.set()

    def _full(self) -> bool:
        return len(self.pending) >= self.limit or self.pending_bytes >= self.limit_bytes

    async def take(self) -> list[Message]:
        """Whatever is pending, up to ``group_messages`` (waits for at least one)."""
        while not self.pending:
            self._arrived.clear()
            await self._arrived.wait()
        pending = self.pending
        group = [pending.popleft() for _ in range(min(len(pending), self.group_messages))]
        self.pending_bytes -= sum(len(m.value or b"") for m in group)
        if not self._full():
            self._room.set()
        return group

    def clear(self) -> None:
        """Drop what is pending (a rebalance: Faust seeks back to the committed offsets)."""
        self.pending.clear()
        self.pending_bytes = 0
        self._room.set()

    def __len__(self) -> int:
        return len(self.pending)


def install(consumer: Any, intake: GroupIntake, flow_control: Any) -> None:
    """Route ``intake.topics`` of this consumer's fetch into ``intake``; cleared with the app's flow control."""
    consumer.group_intake = intake
    flow_control.manage_queue(intake)
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover  (the fetch loop)
    """Faust 0.15's ``Consumer._drain_messages``, with a group intake (see the module)."""
    intake: GroupIntake | None = getattr(self, "group_intake", None)
    claimed = intake.topics if intake is not None else frozenset()
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    unacked = self._unacked_messages

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = cast(Any, getmany(timeout=1.0))
            await self.sleep(0)
            if not self.should_stop:
                grouped: list[Message] = []
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            if acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        if tp.topic in claimed:
                            # pending an ack, as Consumer.track_message (without its sensors)
                            unacked.add(message)
                            grouped.append(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                if grouped and intake is not None:
                    await self.wait_first(intake.put(grouped), self.suspend_flow.wait())
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)
