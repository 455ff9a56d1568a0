"""The ``deltas`` changelog read and written without a Faust table (``LIENTHONG_STATE_STORE=disk``).

With partition state on disk (``streams.store``) the worker no longer needs
Faust to restore a table from the changelog at every start: that read the
whole history before the first message. The changelog stays the source of
truth for a worker that has no trustworthy database for a partition:

* **Writing.** Each delta (or each of its parts, ``streams.parts``) is sent by
  the worker's producer to partition ``P`` of ``<app id>-deltas-changelog``
  (the topic the table used: older changelogs still fold), with the headers
  ``lienthong.writer`` (the id of the database that applied it) and
  ``lienthong.seq``. Faust flushes that producer before it commits source
  offsets, as it did for the table.
* **Trusting a database.** A database is trusted for ``P`` when the last record
  of the changelog partition was written by it, or is the record it was last
  restored up to: nobody wrote to ``P`` since. Otherwise (another worker took
  the partition over and went on) it is thrown away and rebuilt.
* **Restoring.** A fold of the partition's changelog in log order into a fresh
  database, a batch of records at a time (memory bounded by a fetch), to the
  end a fetch sees (Tansu can report an end offset short of it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from hubbase.kafka_security import side_reader

WRITER_HEADER = "lienthong.writer"
SEQ_HEADER = "lienthong.seq"
#: The offset of the partition's newest complete checkpoint marker when the record was written.
CHECKPOINT_HEADER = "lienthong.checkpoint"

#: Fetch limits of a changelog read (a part is at most ``LIENTHONG_MAX_RECORD_BYTES``).
FETCH_BYTES = 16 * 1024 * 1024
#: Milliseconds a fetch waits; an empty fetch at or past the end offset ends a read.
FETCH_WAIT_MS = 100
#: Empty fetches tolerated before the reported end before a read gives up.
MAX_EMPTY_FETCHES = 500


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-deltas-changelog"


@dataclass(frozen=True)
class Tail:
    """Who wrote the last record of a changelog partition (``None``: not a disk worker)."""

    writer: str | None
    seq: int | None
    offset: int
    #: The newest checkpoint marker's offset the writer knew (None: none, or an older writer).
    checkpoint: int | None = None

    def mark(self) -> bytes:
        return f"{self.writer}|{self.seq}|{self.offset}".encode()


def headers_of(writer: str, seq: int, checkpoint: int | None = None) -> list[tuple[str, bytes]]:
    headers = [(WRITER_HEADER, writer.encode()), (SEQ_HEADER, str(seq).encode())]
    if checkpoint is not None:
        headers.append((CHECKPOINT_HEADER, str(checkpoint).encode()))
    return headers


def tail_of(record: ConsumerRecord) -> Tail:  # type: ignore[type-arg]
    headers = dict(record.headers or ())
    writer = headers.get(WRITER_HEADER)
    seq = headers.get(SEQ_HEADER)
    marker = headers.get(CHECKPOINT_HEADER)
    return Tail(writer.decode() if writer else None, int(seq) if seq else None, record.offset,
                int(marker) if marker else None)


async def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return await side_reader(bootstrap, fetch_wait_ms=FETCH_WAIT_MS, fetch_bytes=FETCH_BYTES)


async def read(bootstrap: str, topic: str, partition: int, tail_only: bool = False, start: int = 0,
               stop: int | None = None) -> AsyncIterator[list[ConsumerRecord]]:  # type: ignore[type-arg]
    """The records of one partition in order, a fetch at a time, to the end a fetch sees.

    ``tail_only``: start at the last record the broker reports (enough to find the tail).
    ``start``/``stop``: only the records at offsets ``start <= offset < stop`` (``stop``
    is then the end, whatever the broker reports).
    """
    consumer = await _consumer(bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = stop if stop is not None else (await consumer.end_offsets([tp]))[tp]
        if end <= start:
            return
        consumer.seek(tp, max(0, end - 1) if tail_only else start)
        empty = 0
        while True:
            records = (await consumer.getmany(tp, timeout_ms=2 * FETCH_WAIT_MS)).get(tp, [])
            if stop is not None:
                records = [record for record in records if record.offset < stop]
            if records:
                empty = 0
                yield records
                if stop is None:
                    continue  # the reported end may be short (Tansu): read until a fetch is empty
            if await consumer.position(tp) >= end:
                return
            if not records:
                empty += 1
                if empty > MAX_EMPTY_FETCHES:
                    raise RuntimeError(f"{topic}/{partition}: nothing read short of offset {end}")
    finally:
        await consumer.stop()


async def tail(bootstrap: str, topic: str, partition: int) -> Tail | None:
    """The last record of a changelog partition (``None``: the partition is empty)."""
    last = None
    async for records in read(bootstrap, topic, partition, tail_only=True):
        last = records[-1]
    return None if last is None else tail_of(last)
