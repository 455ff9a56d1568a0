"""The Faust app: one agent over every event topic, state in one delta table.

The agent hands each message to :class:`streams.processor.Processor` and writes
the resulting delta to the ``deltas`` table *while the message is the current
event*, so Faust puts the changelog record on the message's own partition number
and flushes it before committing the source offset. On (re)assignment the
partition's state is folded from the table (restored from its changelog by
Faust), which restores the fence too. See ``docs/exactly-once.md``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import weakref
from collections.abc import Awaitable, Collection, Sequence
from pathlib import Path
from typing import Any

import faust
import faust.streams as faust_streams
import orjson
from faust.types import TP, Message

from hubbase.kafka_security import faust_credentials
from hubbase.logs import get_logger
from hubbase.settings import Settings
from schemas.codec import EventCodec
from schemas.partitioning import kafka_partitioner
from schemas.topics import EVENT_TOPICS, ROLLUP_PARTIALS
from streams import audit, changelog, faults, faust_fixes, intake, parts, rollup_merge
from streams.api.live import Listeners
from streams.api.metrics import HubMetrics
from streams.checkpoint import Checkpoints, Send, is_checkpoint_key
from streams.exits import EXIT_CRASHED, exit_now
from streams.flags import default_rules
from streams.health import Health, Problem, crash_of
from streams.intake import GroupIntake
from streams.merge_store import MergeStore
from streams.output import Output
from streams.processor import Outcome, Processor, SourceMessage
from streams.restore import DiskStates
from streams.silence import SilenceMonitor, owns_publisher_partition
from streams.sla import resolve_sla, sla_ms
from streams.snapshots import Snapshots
from streams.state import Delta, PartitionState, delta_key, partition_of_delta_key
from streams.store import DiskPartitionState
from streams.view import CityView, snapshot_of

log = get_logger(__name__)

#: RocksDB options of the delta table, per partition database (bytes). Deltas are
#: written once and read only when a partition is folded, so small buffers do.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024 * 1024,
    "block_cache_compressed_size": 8 * 1024 * 1024,
}

#: Bytes aiokafka fetches ahead per partition (``consumer_max_fetch_size``).
CONSUMER_FETCH_BYTES = 1024 * 1024
#: Messages the agent's stream may prefetch (Faust's back pressure).
STREAM_BUFFER_MESSAGES = 64


class Hub:
    """What a running worker holds: the Faust app, the processor and the view."""

    def __init__(self, settings: Settings, bootstrap: str, worker_name: str | None = None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.worker_name = worker_name or f"{os.uname().nodename}-{os.getpid()}"
        self.codec = EventCodec.for_registry_url(settings.schema_registry_url)
        self.processor = build_processor(settings, self.codec)
        self.silence = SilenceMonitor(sla_ms(resolve_sla(settings.sla), "AGENCY_SILENT"))
        #: Wall-clock seconds a caught-up feed must stay quiet to count as idle (streams.clocks).
        self.source_idle_s = sla_ms(resolve_sla(settings.sla), "SOURCE_IDLE") / 1000
        #: Idle topics per owned partition (refreshed each second), and when each
        #: (topic, partition) last delivered a message (monotonic seconds).
        self.idle: dict[int, frozenset[str]] = {}
        self.last_heard: dict[tuple[str, int], float] = {}
        self._started_monotonic = time.monotonic()
        self.view = CityView()
        self.view.track(self.processor)
        self.view.live_flags.append(self.silence.flags)
        self.listeners = Listeners()
        self.started_at = time.time()
        self.stats: dict[str, Any] = {"messages": 0, "groups": 0, "skipped": 0, "first_message_at": None, "last_message_at": None,
                                      "first_message_cpu_s": None, "last_message_cpu_s": None}
        self.metrics = HubMetrics(self)
        self.health = Health(settings.health_stall_s, settings.health_recovery_s)
        #: The HTTP server's start (see serve_http), held so it is not collected.
        self.web_task: asyncio.Future[None] | None = None
        self.fault = faults.armed()
        #: LIENTHONG_DEBUG_CONSUMER: log Faust's consumer state periodically and every message handled
        self.debug = float(os.environ.get("LIENTHONG_DEBUG_CONSUMER") or 0)
        #: Partition states opened since start by source, and deltas folded from the changelog.
        self.restores: dict[str, int] = {"local store": 0, "checkpoint": 0, "changelog": 0, "deltas": 0}
        #: LIENTHONG_STATE_STORE=disk: partition state in RocksDB databases of its own,
        #: reopened on restart instead of folding the changelog (docs/exactly-once.md §4).
        self.disk: DiskStates | None = None
        if settings.state_store == "disk":
            self.changelog = changelog.changelog_topic(settings.app_id)
            self.disk = DiskStates(settings.data_dir / "state" / self.worker_name, bootstrap, self.changelog,
                                   settings.state_cache, self.processor.stores)
        #: Bumped when a partition is revoked: a restore that was under way for it is not adopted.
        self.epochs: dict[int, int] = {}
        self._restoring: dict[int, asyncio.Lock] = {}
        if self.debug:
            # Faust's and aiokafka's own account of rebalances, recovery and seeks
            for library in ("faust", "aiokafka"):
                logging.getLogger(library).setLevel(logging.INFO)
        self.app = self._build_app()
        #: The event topics' records, straight from the fetch, for group commit (streams.intake).
        self.intake = GroupIntake(EVENT_TOPICS, settings.group_messages)
        intake.install(self.app.consumer, self.intake, self.app.flow_control)
        self.output = Output(self.app, self.codec, settings.partitions)
        #: State on disk: checkpoints of each partition's state into its changelog (streams.checkpoint).
        self.checkpoints: Checkpoints | None = None
        if self.disk is not None:
            self.checkpoints = Checkpoints(self.checkpoint_sender, lambda: self.output.hand_on_changelog(everything=True),
                                           self.output.flush, settings.checkpoint_bytes, settings.max_record_bytes,
                                           self.fault)
        self.snapshots = Snapshots(self.output, self.processor.states, self.view, self.worker_name, bootstrap,
                                   settings.partitions, settings.max_record_bytes)

    # -- what the API and metrics may read (streams.api.worker_view.WorkerView) --
    @property
    def partitions_owned(self) -> Collection[int]:
        return self.processor.states.keys()

    @property
    def verifies_signatures(self) -> bool:
        return self.processor.keyring is not None

    @property
    def silence_periods(self) -> list[dict[str, Any]]:
        return self.silence.periods

    @property
    def consumer(self) -> Any:
        return self.app.consumer

    # -- construction ---------------------------------------------------------
    def _build_app(self) -> faust.App:
        faust_fixes.apply()  # flush before commit must really flush: see the module
        s = self.settings
        data_dir = s.data_dir / "worker" / self.worker_name
        reset_local_store(data_dir)
        app = faust.App(
            s.app_id,
            broker=[f"kafka://{h}" for h in self.bootstrap.split(",")],
            store=s.store,
            datadir=str(data_dir),
            web_enabled=False,
            topic_partitions=s.partitions,
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            broker_rebalance_timeout=s.rebalance_timeout,
            broker_session_timeout=max(s.rebalance_timeout * 2, 10.0),
            broker_heartbeat_interval=1.0,
            broker_commit_interval=1.0,
            # a restart under the same name takes its partitions back at once (Settings.static_membership)
            consumer_group_instance_id=f"{s.app_id}.{self.worker_name}" if s.static_membership else None,
            table_standby_replicas=0,
            producer_max_request_size=16 * 1024 * 1024,
            # what aiokafka prefetches, per partition: at 4 MiB its fetched and unpacked records
            # were 72 MB of a disk worker's 343 MB peak at 1 M cards (memray, issue 12). A record
            # larger than this (at most LIENTHONG_MAX_RECORD_BYTES) still comes whole.
            consumer_max_fetch_size=CONSUMER_FETCH_BYTES,
            stream_wait_empty=False,
            # Messages are batches of up to ~500 events (~100 KB): Faust's default
            # prefetch of 4096 messages could hold hundreds of MiB ahead of the agent.
            stream_buffer_maxsize=STREAM_BUFFER_MESSAGES,
            # Kafka's default partitioner, hashed in C (aiokafka's is pure Python)
            producer_partitioner=kafka_partitioner,
            logging_config=None,
            # SASL/TLS from LIENTHONG_KAFKA_* (None: plaintext)
            broker_credentials=faust_credentials(),
        )
        if self.disk is not None:
            # the changelog is written by hand (streams.changelog): no Faust table, so no
            # table recovery reading the whole changelog at every start
            from hubbase.topic_admin import ensure_topics

            ensure_topics(self.bootstrap, s.partitions, (self.changelog,),
                          configs={self.changelog: {"cleanup.policy": "compact"}})
            # written as the table wrote it: through Faust's producer buffer (the agent does not
            # wait for each record), which Faust drains before it commits source offsets
            self.changelog_topic = app.topic(self.changelog, key_type=bytes, value_type=bytes,
                                             key_serializer="raw", value_serializer="raw")
        else:
            self.deltas = bytes_table(
                app, "deltas", s.partitions,
                "One record per processed source message: the offset-fenced state delta.")
        self.events_topic = app.topic(
            *EVENT_TOPICS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        # the merge stage of SYNC_MISSING roll-ups (streams.rollup_merge): its input and its state
        self.partials_topic = app.topic(
            ROLLUP_PARTIALS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=s.partitions,
        )
        if self.disk is not None:
            # on disk beside the partition databases, caught up from the partials topic itself
            # (streams.merge_store): no Faust table whose changelog every start would read
            self.merge_store: MergeStore | None = MergeStore(
                s.data_dir / "state" / self.worker_name, self.bootstrap, ROLLUP_PARTIALS)
        else:
            self.merge_store = None
            self.merged = bytes_table(
                app, rollup_merge.MERGE_TABLE, s.partitions,
                "Per ward|day: the latest roll-up partial of each partition, and the last announcement.")

        hub = self

        @app.agent(self.events_topic, name="lienthong.count-and-flag")
        async def count_and_flag(stream: faust.StreamT) -> None:
            # The agent subscribes the event topics (assignment, rebalances, acks), but
            # their records come through the group intake, not this stream (streams.intake).
            try:
                await hub.consume_groups()
            except Exception as exc:
                # Faust would log it, restart the agent past the failed message and
                # go on: that message's counts would be lost. End the worker instead;
                # its restart re-delivers the message (docs/exactly-once.md §3).
                exit_now(EXIT_CRASHED, "agent_crashed", error=repr(exc), exc_info=exc)

        @app.agent(self.partials_topic, name="lienthong.merge-rollups")
        async def merge_rollups(stream: faust.StreamT) -> None:
            try:
                async for event in stream.events():
                    message = event.message
                    await hub.merge_partial(message.value or b"", message.partition, message.offset)
            except Exception as exc:
                # as count_and_flag: a partial skipped would leave its roll-up wrong
                exit_now(EXIT_CRASHED, "agent_crashed", error=repr(exc), exc_info=exc)

        @app.timer(interval=s.snapshot_interval, name="lienthong.publish-snapshots")
        async def publish_snapshots() -> None:
            await hub.snapshots.publish()

        if self.disk is not None:
            @app.timer(interval=5.0, name="lienthong.forget-committed-deltas")
            async def forget_committed() -> None:
                hub.forget_committed_deltas()

            @app.timer(interval=1.0, name="lienthong.write-checkpoints")
            async def write_checkpoints() -> None:
                if hub.checkpoints is not None:
                    await hub.checkpoints.tick()

        @app.timer(interval=1.0, name="lienthong.idle-sources")
        async def watch_idle_sources() -> None:
            await hub.refresh_idle()

        @app.timer(interval=self.silence.interval_s, name="lienthong.agency-silence")
        async def watch_agency_silence() -> None:
            await hub.check_silence()

        if self.debug > 0:
            from streams.consumer_debug import consumer_state

            @app.timer(interval=self.debug, name="lienthong.debug-consumer")
            async def debug_consumer() -> None:
                log.info("consumer_state", messages=hub.stats["messages"], **consumer_state(app))

        @app.task
        async def read_snapshots() -> None:
            await hub.snapshots.read()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust calls receivers positionally
        async def on_revoked(app: faust.App, revoked: set[TP], **_: Any) -> None:
            hub.health.rebalance_started()
            hub.on_revoked(revoked)

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust calls receivers positionally
        async def on_assigned(app: faust.App, assigned: set[TP], **_: Any) -> None:
            hub.health.rebalance_started()
            if hub.fault is not None and hub.fault.kind == "app_crash":
                raise faults.InjectedFault("injected crash of the Faust app")
            log.info("partitions_assigned", partitions=sorted({tp.partition for tp in assigned}))

        @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # Faust calls receivers positionally
        async def on_rebalance_complete(app: faust.App, **_: Any) -> None:
            # The delta table is recovered now: fold every owned partition, so the
            # view is live for them even before their next message arrives.
            # (with state on disk, all at once: each is mostly waiting on the broker)
            await asyncio.gather(*(hub.ensure_state(partition) for partition in sorted(hub.assigned_partitions())))
            if hub.disk is not None:
                hub.disk.release_unclaimed(hub.assigned_partitions())
            if hub.fault is not None and hub.fault.kind == "recovery_hang":
                await asyncio.sleep(3600)  # tests: a recovery that never finishes
            hub.health.recovered()

        return app

    # -- processing -----------------------------------------------------------
    def owned_state(self, partition: int) -> PartitionState:
        """The live state of a partition, folded from the delta table on first use."""
        state = self.processor.states.get(partition)
        if state is None:
            # a delta written in parts (streams.parts) counts only when all of them are there
            deltas = [
                Delta.decode(value)
                for value in parts.assemble(
                    (key, value) for key, value in self.deltas.items()
                    if value is not None and partition_of_delta_key(key) == partition
                    and not is_checkpoint_key(key)  # a disk worker's (streams.checkpoint): not a delta
                ).values()
            ]
            state = PartitionState.fold(partition, deltas, self.processor.stores)
            self.processor.adopt(state)
            log.info("partition_restored", partition=partition, deltas=len(deltas), seq=state.seq,
                     **({"applied": state.applied} if self.debug else {}))
        return state

    async def ensure_state(self, partition: int) -> PartitionState | None:
        """The live state of a partition; with state on disk, opened or rebuilt on first use.

        None when the partition was revoked while its state was being rebuilt (its
        messages are the next owner's).
        """
        if self.disk is None:
            return self.owned_state(partition)
        state = self.processor.states.get(partition)
        if state is not None:
            return state
        async with self._restoring.setdefault(partition, asyncio.Lock()):
            state = self.processor.states.get(partition)
            if state is not None:
                return state
            if partition not in self.assigned_partitions():
                return None  # revoked before its turn came: never adopt a state this worker does not own
            epoch = self.epochs.get(partition, 0)
            started = time.monotonic()
            opened = await self.disk.open(partition, lambda topic: self.committed_offset(topic, partition))
            if epoch != self.epochs.get(partition, 0) or partition not in self.assigned_partitions():
                opened.state.db.close()
                log.info("partition_restore_abandoned", partition=partition)
                return None
            self.processor.adopt(opened.state)
            self.restores[opened.source] += 1
            self.restores["deltas"] += opened.deltas
            log.info("partition_restored", partition=partition, source=opened.source, deltas=opened.deltas,
                     seq=opened.state.seq, seconds=round(time.monotonic() - started, 3),
                     **({"applied": opened.state.applied} if self.debug else {}))
            return opened.state

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """The source offset Faust last committed (or sought to) for ``topic``/``partition``; None: unknown."""
        consumer: Any = self.app.consumer  # Faust keeps them in its private map
        committed = consumer._committed_offset.get(TP(topic, partition))
        return committed if isinstance(committed, int) else None

    def forget_committed_deltas(self) -> None:
        """Drop kept deltas whose messages are committed: the changelog has them (streams.store)."""
        for partition, state in list(self.processor.states.items()):
            if not isinstance(state, DiskPartitionState):
                continue
            for topic in list(state.applied):
                committed = self.committed_offset(topic, partition)
                if committed is not None and committed > 1:
                    state.db.forget_kept_below(topic, committed - 1)

    def assigned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in EVENT_TOPICS}

    async def consume_groups(self) -> None:
        """The agent's loop: take what the intake holds, commit it in groups, then ack it.

        Acked only after the group's state change is written: Faust commits an
        offset once its message is acked and the producer (the changelog) flushed.
        """
        take, ack = self.intake.take, self.app.consumer.ack
        while True:
            messages = await take()
            await self.handle_events(messages)
            for message in messages:
                ack(message)
            await self.output.hand_on_changelog(everything=not self.intake)

    async def handle_events(self, events: Sequence[Message]) -> None:
        """Messages taken at once: one group commit per topic-partition run.

        Messages of one (topic, partition) keep their offset order and become one
        state change (streams.processor.Processor.process_group), cut where the
        source bytes would pass ``group_bytes`` (a delta grows with what it covers,
        and no record may pass ``max_record_bytes`` unsplit). Runs of different
        topic-partitions are independent: each has its own fence.
        """
        runs: dict[tuple[str, int], list[list[Message]]] = {}
        limit = self.settings.group_bytes
        sizes: dict[tuple[str, int], int] = {}
        for message in events:
            tp = (message.topic, message.partition)
            size = len(message.value or b"")
            groups = runs.setdefault(tp, [[]])
            if groups[-1] and sizes[tp] + size > limit:
                groups.append([])
                sizes[tp] = 0
            groups[-1].append(message)
            sizes[tp] = sizes.get(tp, 0) + size
        for groups in runs.values():
            for group in groups:
                await self.handle_group(group)
                # after each group, not each take: a take of a backfill is ~80 groups, and their
                # deltas (MBs each) all waited for the producer (236 MiB at 1 M cards, memray)
                await self.output.hand_on_changelog(everything=False)

    async def handle_group(self, messages: Sequence[Message]) -> Outcome:
        """Messages of one topic-partition, in offset order: replays re-announced, the rest one state change."""
        first = messages[0]
        topic, partition = first.topic, first.partition
        state = await self.ensure_state(partition)
        if state is None:
            return Outcome(skipped=True)  # revoked while restoring: the next owner's
        self.last_heard[(topic, partition)] = time.monotonic()
        idle = self.idle.get(partition, frozenset())
        if topic in idle:
            idle = idle - {topic}  # it just spoke
        fresh = []
        for message in messages:
            if state.is_applied(topic, message.offset):
                await self._replayed(message)
            else:
                fresh.append(message)
        outcome = Outcome(skipped=True)
        while fresh:
            outcome = await self._commit_group(topic, partition, fresh, idle)
            fresh = fresh[outcome.consumed:]
        return outcome

    async def _commit_group(self, topic: str, partition: int, fresh: list[Message], idle: frozenset[str]) -> Outcome:
        """One state change over (a prefix of) ``fresh``: written, then its side effects sent."""
        first = fresh[0]
        outcome = self.processor.process_group(
            topic, partition,
            # round: the Kafka timestamp is whole ms, Faust hands it over as float seconds
            [SourceMessage(m.offset, m.value or b"", round(m.timestamp * 1000), m.headers, m.key) for m in fresh],
            int(time.time() * 1000), idle=idle,
        )
        applied = fresh[:outcome.consumed]
        last = applied[-1]
        stats = self.stats
        before = stats["messages"]
        stats["messages"] += len(applied)
        stats["groups"] += 1
        # wall-clock span of the work, for operators and `lienthong bench`: an HTTP
        # poll can be answered late while the agent is busy, so the worker keeps it
        stats["last_message_at"] = time.time()
        self.health.progressed()
        stats["last_message_cpu_s"] = time.process_time()
        if stats["first_message_at"] is None:
            stats["first_message_at"] = stats["last_message_at"]
            stats["first_message_cpu_s"] = stats["last_message_cpu_s"]
        self.metrics.record(topic, partition, last.offset, first.timestamp, outcome, messages=len(applied))
        if self.debug:
            log.info("group_handled", topic=topic, partition=partition, first=fresh[0].offset,
                     offset=last.offset, messages=len(applied), accepted=sum(outcome.accepted.values()))
        assert outcome.delta is not None
        await self.write_delta(delta_key(partition, topic, last.offset), outcome.delta.encoded or outcome.delta.encode(),
                               partition, last)
        fault = self.fault
        if fault is not None and fault.kind in faults.PER_MESSAGE and before < fault.at_message <= stats["messages"]:
            await self._inject_fault()
        for record in outcome.audits:
            await self.output.publish_audit(record)
        for dead in outcome.dead_letters:
            await self.output.dead_letter(dead.key, dead.value, dead.headers())
        await self.output.publish_partials(outcome.delta.put.get("partials"))
        await self.output.publish_flags(outcome.flag_changes)
        self.notify({"kind": "delta", "partition": partition, "flags": outcome.flag_changes,
                     "accepted": dict(outcome.accepted)})
        state = self.processor.states.get(partition)
        if self.checkpoints is not None and isinstance(state, DiskPartitionState):
            await self.checkpoints.after_group(state)
        return outcome

    def checkpoint_sender(self, partition: int) -> Send:
        """How a checkpoint's records go onto ``partition`` of the changelog: straight to the client."""
        async def send(key: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> Awaitable[Any]:
            return await self.output.produce(self.changelog, orjson.dumps(key), value, headers, partition)
        return send

    async def _replayed(self, message: Message) -> None:
        """A message the fence covers (a replay after a crash): its delta and side effects again.

        Write the same record again: harmless if the changelog has it, and it
        repairs a local store that got the write before the crash while the
        changelog did not. Its side effects may have died with the worker that
        wrote it: again too. A group's delta is kept under its last offset, so it
        is found when that message comes round; the others find nothing.
        """
        topic, partition, offset = message.topic, message.partition, message.offset
        self.stats["skipped"] += 1
        self.stats["messages"] += 1  # handled: a replay skipped by the fence is progress too
        self.health.progressed()
        self.metrics.record(topic, partition, offset, message.timestamp, Outcome(skipped=True))
        if self.debug:
            log.info("message_handled", topic=topic, partition=partition, offset=offset, skipped=True, accepted=0)
        key = delta_key(partition, topic, offset)
        existing = self.stored_delta(key, partition, topic, offset)
        if existing is None:
            return
        await self.write_delta(key, existing, partition, message)
        # decoded only when it has some: a delta of a full batch is ~200 KB
        if (b'"a":[' in existing or b'"d":[' in existing or b'"audit:' in existing
                or b'"partials":{' in existing or b'"u":[' in existing):
            delta = Delta.decode(existing)
            for record in audit.records_of_delta(delta):
                await self.output.publish_audit(record)
            await self.output.announce_again(delta, message.key)

    async def write_delta(self, key: str, value: bytes, partition: int, message: Message) -> None:
        """One changelog record, or its parts when it is larger than a record may be (streams.parts).

        Through the table, or with state on disk straight to the changelog partition
        (streams.changelog), marked with the writing database and sequence.
        """
        pieces = parts.split(value, self.settings.max_record_bytes)
        self.output.changelog_queued += len(value)
        state = self.processor.states.get(partition)
        if self.disk is not None and isinstance(state, DiskPartitionState):
            marker = self.checkpoints.marker_of(state) if self.checkpoints is not None else None
            headers = changelog.headers_of(state.db.writer, state.seq, marker)
            keys = [key] if len(pieces) == 1 else [parts.part_key(key, i) for i in range(len(pieces))]
            for piece_key, piece in zip(keys, pieces, strict=True):
                self.output.changelog_soon(self.changelog_topic, orjson.dumps(piece_key), piece, partition, headers)
            if self.checkpoints is not None:
                self.checkpoints.written(state, keys, len(value))
        else:
            # the table sends its changelog record to the current event's partition:
            # make it (an event of) the group's last message
            event = self.app.create_event(message.key, message.value, message.headers, message)
            set_current_event(event)  # held by ``event`` while the table writes: Faust keeps a weak reference
            if len(pieces) == 1:
                self.deltas[key] = value
                return
            for index, piece in enumerate(pieces):
                self.deltas[parts.part_key(key, index)] = piece
        if len(pieces) == 1:
            return
        # topic and offset rather than the key: a 12-digit offset reads as an ID number to the log scrubber
        log.info("delta_split", topic=key.split("|")[1], offset=int(key.rsplit("|", 1)[1]), bytes=len(value),
                 parts=len(pieces))

    def stored_delta(self, key: str, partition: int, topic: str, offset: int) -> bytes | None:
        """The delta stored under ``key``, whole or assembled from all of its parts (None: not all there).

        With state on disk: the delta kept in the partition's database until its offset is committed.
        """
        state = self.processor.states.get(partition)
        if isinstance(state, DiskPartitionState):
            return state.db.kept(topic, offset)
        whole = self.deltas.get(key)
        if whole is not None:
            return bytes(whole)
        first = self.deltas.get(parts.part_key(key, 0))
        if first is None or not parts.is_part(first):
            return None
        count = parts.parse(first)[2]
        pieces = [(parts.part_key(key, i), self.deltas.get(parts.part_key(key, i))) for i in range(count)]
        return parts.assemble((k, v) for k, v in pieces if v is not None).get(key)

    async def _inject_fault(self) -> None:
        """Break the worker here, as ``LIENTHONG_FAULT`` asks (tests only; see streams.faults)."""
        assert self.fault is not None
        if self.fault.kind == "agent_error":
            raise faults.InjectedFault(f"injected agent error at message {self.fault.at_message}")
        if self.fault.kind == "stall":
            await asyncio.sleep(3600)  # an agent stuck on one message
            return
        await self.output.flush()  # the delta is in the changelog now
        faults.exit_now(self.fault)

    async def serve_http(self) -> None:
        """Serve the HTTP API from the start, so /healthz can tell a recovery that never ends.

        Not an ``app.task``: Faust starts those only after the first table
        recovery has completed, and a worker stuck in it would not answer at all.
        """
        from streams.api.web import start_web

        s = self.settings
        self.web_runner = await start_web(self, self.metrics, s.web_host, s.web_port)
        log.info("web_listening", url=f"http://{s.web_host}:{s.web_port}/")

    async def problems(self) -> list[Problem]:
        """Why this worker is not doing its job right now (empty: healthy); lag refreshed."""
        await self.metrics.refresh_lag()
        return self.health.problems(self.metrics.total_lag(), crash_of(self.app))

    async def refresh_idle(self) -> None:
        """Which owned topic-partitions are idle: nothing unread (lag 0) and quiet for ``SOURCE_IDLE``.

        A feed with unread messages is never idle, so a backfill waits for it; a
        feed that is caught up and silent lets flags waiting for it be judged
        (see ``streams/clocks.py``, as Kafka Streams' ``max.task.idle.ms``).
        """
        await self.metrics.refresh_lag()
        now = time.monotonic()
        idle: dict[int, set[str]] = {}
        for (topic, partition), lag in self.metrics.lag.items():
            quiet_since = self.last_heard.get((topic, partition), self._started_monotonic)
            if lag == 0 and now - quiet_since >= self.source_idle_s:
                idle.setdefault(partition, set()).add(topic)
        self.idle = {partition: frozenset(topics) for partition, topics in idle.items()}

    async def merge_partial(self, value: bytes, partition: int, offset: int) -> None:
        """The merge agent's step: keep the partial, announce the ward × day's flag if its status moved."""
        if self.merge_store is not None:
            announce = await self.merge_store.merge(partition, offset, value)
        else:
            group, updated, announce = rollup_merge.merge(value, self.merged.get)
            if updated is not None:
                self.merged[group] = updated
        await self.output.publish_flags(announce)
        if announce:
            self.notify({"kind": "rollup", "flags": announce})

    def on_revoked(self, revoked: set[TP]) -> None:
        if self.merge_store is not None:
            for tp in revoked:
                if tp.topic == ROLLUP_PARTIALS:
                    self.merge_store.revoked(tp.partition)
        for partition in {tp.partition for tp in revoked}:
            self.epochs[partition] = self.epochs.get(partition, 0) + 1
            state = self.processor.states.get(partition)
            if state is not None:
                # the new owner's snapshots replace it; until then the view keeps ours
                self.view.accept_snapshot(snapshot_of(state, self.worker_name))
            self.processor.drop(partition)
            if self.checkpoints is not None:
                self.checkpoints.abandon(partition)  # before its database (and snapshot) is closed
            if isinstance(state, DiskPartitionState):
                state.db.close()
            self.snapshots.forget(partition)
        log.info("partitions_revoked", partitions=sorted({tp.partition for tp in revoked}))

    async def check_silence(self) -> None:
        """AGENCY_SILENT on the wall clock; announced only by the heartbeats-partition-0 owner."""
        changes = self.silence.check(self.view.agencies, int(time.time() * 1000))
        if not changes:
            return
        if owns_publisher_partition(self.app.consumer.assignment()):
            await self.output.publish_flags(changes)
        self.notify({"kind": "silence", "flags": changes})

    # -- live listeners (server-sent events) ----------------------------------
    def notify(self, message: dict[str, Any]) -> None:
        self.listeners.notify(message)


def bytes_table(app: faust.App, name: str, partitions: int, purpose: str) -> Any:
    """A Faust table keyed by str and valued by bytes (state in memory only: on disk there is none).

    Bytes: the Hub encodes each value once (``Delta.encode``, the merge entry); Faust's
    default JSON value serializer would encode it twice (local store and changelog).
    RocksDB, one database per partition, with small options: Faust's defaults (64 MiB × 3
    write buffers, a 2 GiB block cache) would keep a whole backfill's deltas in memory,
    and the state the worker reads is in PartitionState anyway.
    """
    return app.Table(name, default=None, partitions=partitions, key_type=str, value_type=bytes, help=purpose,
                     options=ROCKSDB_OPTIONS)


def set_current_event(event: faust.EventT) -> None:
    """Make ``event`` Faust's current event in this task (a table write goes to its partition)."""
    faust_streams._current_event.set(weakref.ref(event))


def reset_local_store(data_dir: Path) -> None:
    """Start every worker from the changelog, with the on-disk store as a cache only.

    The changelog is the source of truth. A local RocksDB store can hold a delta
    that never reached the changelog (written locally, then SIGKILL before the
    producer flushed), and Faust's persisted changelog offsets are then ahead of
    the topic (it refuses to start with a ConsistencyError). Rebuilding the local
    store on start removes both hazards; the store still keeps state on disk
    rather than in memory while the worker runs.
    """
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)


def build_processor(settings: Settings, codec: EventCodec) -> Processor:
    """The worker's processor: signatures verified unless turned off, dead letters cleaned with the pseudonym key."""
    from schemas.pseudonym import Pseudonymiser
    from streams.redaction import DeadLetterRedactor

    keyring = settings.keyring() if settings.verify_signatures else None
    pseudonymiser = Pseudonymiser(settings.resolved_pseudonym_key())
    return Processor(codec, default_rules(settings.sla), keyring=keyring,
                     redactor=DeadLetterRedactor(codec, pseudonymiser.ref),
                     deadline_step=settings.deadline_step, dedupe_horizon_days=settings.dedupe_horizon_days)


def create_hub(settings: Settings, bootstrap: str, worker_name: str | None = None) -> Hub:
    return Hub(settings, bootstrap, worker_name)
