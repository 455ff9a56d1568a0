"""The worker's output: the only code that hands records to the Kafka producer.

Alerts (flags), dead letters, audit records and partition snapshots all leave
through :class:`Output`, as Quix Streams' sinks do, so how a side effect reaches
the broker (and what a committed offset guarantees about it) is decided in one
place: ``docs/exactly-once.md`` §5a.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import Producer as FaustAIOKafkaProducer

from hubbase.logs import get_logger
from schemas.codec import EventCodec
from schemas.partitioning import partition_for
from schemas.topics import ALERTS, AUDIT, DEADLETTER, ROLLUP_PARTIALS
from streams import audit, rollup_merge
from streams.processor import dead_letter_key, dead_letter_of_record
from streams.state import Delta

log = get_logger(__name__)


#: Changelog bytes (deltas) the worker lets wait in Faust's producer buffer before it drains
#: it to the Kafka client (``hand_on_changelog``).
CHANGELOG_QUEUE_BYTES = 16 * 1024 * 1024


class Output:
    """Side effects of processed messages, sent with the Faust app's own producer."""

    def __init__(self, app: faust.App, codec: EventCodec, partitions: int) -> None:
        self.app = app
        self.codec = codec
        self.partitions = partitions
        #: Bytes of changelog records queued in Faust's producer buffer since it was last drained.
        self.changelog_queued = 0

    async def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Awaitable[Any]:
        """Hand a side effect (alert, dead letter, snapshot) to the Kafka producer.

        Straight to Faust's producer rather than through ``Topic.send``: the topic
        wrapper adds futures, callbacks and sensors per message that cost more than
        the send itself (a fifth of the worker in a backfill with many flags). The
        send is awaited until the client has queued it, and Faust flushes the
        producer before it commits source offsets, so a committed message's side
        effects are on the broker. Not ``send_soon`` either: see
        ``docs/exactly-once.md`` §5a. Returns the broker's acknowledgement, for a
        caller that must not queue the next message before this one is sent.

        Faust's ``Producer.send`` is itself a thin wrapper (a signal per message)
        around aiokafka's, so the client's own producer is used; and a keyed
        message is given its partition here (Kafka's default partitioner, in C),
        which spares aiokafka building the topic's partition lists per message.
        Together about a third of an alert's cost.
        """
        # the aiokafka client that Faust flushes before it commits offsets
        producer = cast(FaustAIOKafkaProducer, self.app.producer)._ensure_producer()
        if partition is None and key is not None:
            partition = partition_for(key, len(await producer.partitions_for(topic)))
        return await producer.send(topic, value, key=key, partition=partition, headers=headers)

    def changelog_soon(self, topic: faust.TopicT, key: bytes, value: bytes, partition: int,
                       headers: list[tuple[str, bytes]]) -> None:
        """A delta (or part) onto the ``deltas`` changelog written by hand (state on disk).

        Through Faust's producer buffer as a table writes its changelog: the agent
        does not wait for each record, and Faust drains the buffer before it
        commits source offsets, so a committed message's delta is on the broker.
        """
        topic.send_soon(key=key, value=value, partition=partition, headers=headers)

    async def hand_on_changelog(self, everything: bool) -> None:
        """Hand queued changelog records (``changelog_soon``) on to the Kafka client.

        Faust's producer buffer is drained only by a flush (before each commit)
        or when it passes its size: its own sender task is never started by the
        aiokafka driver. Called after every group: past the size (as Faust's
        conductor did before each message), and ``everything`` when the worker
        has caught up, so a quiet worker's changelog does not wait for the next
        commit. The client sends them at once; durability is still the commit's
        flush (docs/exactly-once.md §3).
        """
        buffer = self.app.producer.buffer
        if everything or self.changelog_queued > CHANGELOG_QUEUE_BYTES:
            # Faust's buffer is bounded by count (100 records), not bytes: 100 deltas of a
            # backfill were ~400 MB of a worker's memory (memray, issue 12)
            await buffer.flush()
            self.changelog_queued = 0
        else:
            await buffer.wait_until_ebb()

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def dead_letter(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """A refused message or item onto ``lienthong.deadletter``, keyed as its source message."""
        await self.produce(DEADLETTER, key, value, headers)

    async def publish_audit(self, record: audit.AuditRecord | None) -> None:
        """An accepted message's audit record onto ``lienthong.audit``, in its chain's partition.

        Sent again, identical, when a replayed message turns out to be applied
        already: the first send may have been lost in the crash; the verifier
        reads the second as a duplicate.
        """
        if record is not None:
            await self.produce(AUDIT, record["chain"].encode(), audit.encode(record),
                               partition=record["partition"] % self.partitions)

    async def publish_flags(self, flags: list[dict[str, Any]]) -> None:
        """Flags as they open, resolve or are withdrawn, onto ``lienthong.alerts``, keyed by flag id.

        One ``send`` per flag, each appended to the producer's open batch for its
        partition. (Measured and not kept: aiokafka's ``send_batch``, one batch per
        partition per message, waits for the previous batch of each partition to
        drain, which cost more than the per-message sends it saved.)
        """
        encode = self.codec.encode_record
        for flag in flags:
            await self.produce(ALERTS, flag["flag_id"].encode(), encode("Flag", flag))

    async def announce_again(self, delta: Delta, key: bytes | None) -> None:
        """Re-send the dead letters and flags a skipped replay's delta recorded (at-least-once)."""
        for record in delta.dead:
            value, headers = dead_letter_of_record(record)
            await self.dead_letter(dead_letter_key(record, key), value, headers)
        await self.publish_flags(delta.alerts)
        await self.publish_partials(delta.put.get("partials"))
        if delta.dead or delta.alerts:
            log.info("side_effects_announced_again", topic=delta.topic, offset=delta.offset,
                     flags=len(delta.alerts), dead_letters=len(delta.dead))

    async def publish_partials(self, partials: dict[str, Any] | None) -> None:
        """A delta's roll-up partials onto ``lienthong.rollup-partials``, for the merge stage.

        Sent again, identical, when a replayed message turns out to be applied
        already: a partial is an absolute value, so the merge reads it twice as once.
        """
        if partials:
            for key, value, partition in rollup_merge.partial_messages(partials, self.partitions):
                await self.produce(ROLLUP_PARTIALS, key, value, partition=partition)
