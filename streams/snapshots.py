"""Partition snapshots: how workers share what they own, for dashboards and the replicated view.

Each worker publishes a snapshot of every owned partition that moved on to
``lienthong.aggregates`` (through :class:`streams.output.Output`) and reads every
other worker's snapshots into its :class:`streams.view.CityView`, so any worker's
API answers for the whole city.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import orjson

from hubbase.kafka_security import aiokafka_config
from hubbase.logs import get_logger
from schemas.topics import AGGREGATES
from streams import parts
from streams.output import Output
from streams.state import PartitionState
from streams.view import CityView, snapshot_pieces

log = get_logger(__name__)

#: Header naming the worker that published a snapshot (it skips its own on read).
WORKER_HEADER = "lienthong.worker"

#: Snapshot publishing gets at most about 1/SNAPSHOT_COST_FACTOR of the worker's time.
SNAPSHOT_COST_FACTOR = 20.0


class Snapshots:
    """Publishes this worker's partitions and reads the others' into the view."""

    def __init__(self, output: Output, states: Mapping[int, PartitionState], view: CityView, worker_name: str,
                 bootstrap: str, partitions: int, max_record_bytes: int) -> None:
        self.output = output
        self.states = states
        self.view = view
        self.worker_name = worker_name
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self.published_versions: dict[int, int] = {}
        #: Publishing snapshots is O(state), and in a backfill every partition
        #: changes every interval: after a publish that took T seconds, the next
        #: waits at least SNAPSHOT_COST_FACTOR × T, so it stays a small share of work.
        self._next_snapshot_at = 0.0

    def forget(self, partition: int) -> None:
        """A revoked partition: its next owner publishes it (its next snapshot is not ours to skip)."""
        self.published_versions.pop(partition, None)

    async def publish(self) -> None:
        if time.monotonic() < self._next_snapshot_at:
            return
        busy = await self._publish()
        self._next_snapshot_at = time.monotonic() + SNAPSHOT_COST_FACTOR * busy

    async def _publish(self) -> float:
        """Publish every partition that moved on; returns the seconds spent encoding them.

        Only encoding counts towards the cost (the agent runs while a send is
        awaited). A snapshot is encoded as it is sent (``snapshot_pieces``, in parts
        of at most ``max_record_bytes``), one part in flight at a time: built whole,
        snapshots were a quarter of a backfilling worker's peak memory.
        """
        busy = 0.0
        for partition, state in list(self.states.items()):
            if self.published_versions.get(partition) == state.version:
                continue
            # the version this snapshot shows: the agent may apply more while the send is awaited
            version = state.version
            records = parts.split_stream(snapshot_pieces(state, self.worker_name), self.max_record_bytes)
            try:
                busy += await self._send(partition, state, records)
            except Exception as exc:  # noqa: BLE001 - a snapshot is retried next interval; never kill the worker
                log.warning("snapshot_not_sent", partition=partition, error=repr(exc))
                continue
            finally:
                records.close()
            if self.states.get(partition) is state:  # not revoked while it was sent
                self.published_versions[partition] = version
        return busy

    async def _send(self, partition: int, state: PartitionState, records: Iterator[bytes]) -> float:
        """Send a snapshot's records in order, each once the one before it is acknowledged.

        Returns the seconds spent encoding. Stops early when the partition is revoked
        meanwhile (its database is closed; its next owner publishes it).
        """
        busy = 0.0
        while True:
            started = time.monotonic()
            record = next(records, None)
            busy += time.monotonic() - started
            if record is None:
                return busy
            sent = await self.output.produce(AGGREGATES, str(partition).encode(), record,
                                             [(WORKER_HEADER, self.worker_name.encode())],
                                             partition=partition % self.partitions)
            del record
            await sent
            if self.states.get(partition) is not state:
                return busy

    async def read(self) -> None:
        """Every other worker's snapshots into the view, from the start of the topic, for ever."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            AGGREGATES,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **aiokafka_config(),
        )
        await consumer.start()
        try:
            own = self.worker_name.encode()
            assembler = parts.Assembler()
            async for record in consumer:
                headers = record.headers or ()
                if (WORKER_HEADER, own) in headers:
                    continue  # this worker's own partitions are live here (on_revoked keeps the last)
                writer = next((v for k, v in headers if k == WORKER_HEADER), b"")
                whole = assembler.add(f"{writer!r}|{record.key!r}", record.value or b"")
                if whole is None:
                    continue  # a part of a snapshot whose other parts are still to come
                try:
                    snapshot = orjson.loads(whole)
                except ValueError:
                    continue
                self.view.accept_snapshot(snapshot)
        finally:
            await consumer.stop()
