"""Opening a partition's state on disk: reopen the worker's own database, or rebuild it from the changelog.

A restarted worker whose database for partition ``P`` is intact and trusted
(``streams.changelog``: nobody wrote to ``P``'s changelog since it did) reopens
it: the fence, counters and small stores are read, and nothing of the
changelog but its last record. The database may be *ahead* of the changelog
(SIGKILL after its write batch, before the producer flushed): those messages
are above the committed offset, re-delivered, skipped by the fence, and their
kept deltas sent to the changelog again (``Hub.handle``).

Otherwise (no database, a new machine, or another worker wrote to ``P`` since)
the database is rebuilt by folding the changelog into a fresh one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import orjson
import rocksdict

from hubbase.logs import get_logger
from streams import changelog, checkpoint, parts
from streams.state import Delta
from streams.store import RESTORED_TAIL, DiskPartitionState, PartitionDB
from streams.stores import StoreName

log = get_logger(__name__)


@dataclass
class Opened:
    state: DiskPartitionState
    #: ``local store`` or ``changelog``
    source: str
    #: Deltas folded from the changelog (0 when the local store was trusted).
    deltas: int


def _close_warmed(future: Future[DiskPartitionState]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().db.close()


def trusted(db: PartitionDB, tail: changelog.Tail | None) -> bool:
    """Nobody but this database wrote to the partition's changelog since it was last in step with it."""
    if tail is None:
        # An empty changelog under a database that applied messages: its own, ahead of the log
        # (killed before its first commit flushed anything: it still keeps every delta it
        # applied), or another log's (the embedded broker restarted, the topic recreated: it
        # committed, so forgot deltas). Rebuilding the latter from nothing and re-reading from
        # the committed offsets loses nothing: a committed offset implies its delta was flushed.
        return db.keeps_every_delta()
    if tail.writer is not None and tail.writer == db.writer:
        return True
    return db.get(RESTORED_TAIL) == tail.mark()


class DiskStates:
    """The partition databases of one worker, under ``root/p<partition>``."""

    def __init__(
        self, root: Path, bootstrap: str, topic: str, cache_entries: int, stores: tuple[StoreName, ...] = (),
    ) -> None:
        self.root = root
        #: The stores the worker's reactions use (``Processor.stores``): each partition opens them.
        self.stores = stores
        self.bootstrap = bootstrap
        self.topic = topic
        self.cache_entries = cache_entries
        #: Seconds spent rebuilding since start, by step (``lienthong_restore_seconds``).
        self.seconds: dict[str, float] = {"find checkpoint": 0.0, "load checkpoint": 0.0, "fold deltas": 0.0}
        #: The worker's own databases, being opened while it joins its group (``warm_up``).
        self.warming: dict[int, Future[DiskPartitionState]] = {}

    def path(self, partition: int) -> Path:
        return self.root / f"p{partition:04d}"

    def warm_up(self) -> None:
        """Open the databases this worker left (``p*`` under its root) in a thread, each with its
        counters summed, while the worker starts and joins its group.

        A restart on a large store spent as long summing counters as joining (5.6 s at 2 M
        events, after the join): now the two overlap. A partition the group gives another
        worker is closed again (:meth:`release_unclaimed`).
        """
        for path in sorted(self.root.glob("p[0-9][0-9][0-9][0-9]")):
            self.warming[int(path.name[1:])] = Future()
        if self.warming:
            threading.Thread(target=self._warm, args=(dict(self.warming),), name="lienthong-warm-up",
                             daemon=True).start()

    def _warm(self, futures: dict[int, Future[DiskPartitionState]]) -> None:
        for partition, future in sorted(futures.items()):
            if not future.set_running_or_notify_cancel():
                continue  # released before its turn
            try:
                state = DiskPartitionState(partition, PartitionDB(self.path(partition)), self.cache_entries,
                                           self.stores)
                if not state.is_new:
                    state.sum_counters()
            except BaseException as exc:  # noqa: BLE001  # handed to whoever waits for it
                future.set_exception(exc)
            else:
                future.set_result(state)

    def release_unclaimed(self, keep: Collection[int]) -> None:
        """Close the warmed databases of partitions this worker was not given."""
        for partition in [p for p in self.warming if p not in keep]:
            future = self.warming.pop(partition)
            if not future.cancel():
                future.add_done_callback(_close_warmed)

    async def claim_warmed(self, partition: int) -> DiskPartitionState | None:
        """The partition's database as the warm-up opened it (None: not warmed, or the warm-up failed)."""
        future = self.warming.pop(partition, None)
        if future is None:
            return None
        try:
            return await asyncio.wrap_future(future)
        except Exception as exc:  # opened again the usual way, which says what is wrong
            log.warning("warm_up_failed", partition=partition, error=repr(exc))
            return None

    async def open(self, partition: int, committed: Callable[[str], int | None]) -> Opened:
        """The partition's state, trusted as it is on disk or rebuilt from the changelog.

        ``committed(topic)``: the committed source offset of ``topic`` on this
        partition (None: unknown), below which a folded delta need not be kept.
        """
        path = self.path(partition)
        tail = await changelog.tail(self.bootstrap, self.topic, partition)
        warmed = await self.claim_warmed(partition)
        if warmed is not None or path.exists():
            state = warmed or DiskPartitionState(partition, PartitionDB(path), self.cache_entries, self.stores)
            db = state.db
            if not state.is_new and trusted(db, tail):
                return Opened(state, "local store", 0)
            db.close()
            PartitionDB.destroy(path)
            if not state.is_new:
                log.info("local_store_not_trusted", partition=partition, tail_writer=tail and tail.writer,
                         writer=db.writer)
        state, source, folded = await self.rebuild(partition, committed, tail)
        if tail is not None:
            state.db.db.put(RESTORED_TAIL, tail.mark())
        return Opened(state, source, folded)

    async def rebuild(self, partition: int, committed: Callable[[str], int | None],
                      tail: changelog.Tail | None = None) -> tuple[DiskPartitionState, str, int]:
        """A fresh database from the newest complete checkpoint (its marker named by the last record,
        ``tail``) and the deltas after it, or from every delta.

        Returns the state, where it came from (``checkpoint`` or ``changelog``) and the deltas applied.
        """
        path = self.path(partition)
        started = time.monotonic()
        marker = None
        if tail is not None:
            # the last record names the newest marker, unless it is that marker (or the first one)
            for offset in dict.fromkeys(o for o in (tail.checkpoint, tail.offset) if o is not None):
                marker = await checkpoint.marker_at(self.bootstrap, self.topic, partition, offset)
                if marker is not None:
                    break
        self.seconds["find checkpoint"] += time.monotonic() - started
        if marker is not None:
            db = PartitionDB(path)
            started = time.monotonic()
            complete, keys = await checkpoint.load(self.bootstrap, self.topic, partition, marker, db)
            self.seconds["load checkpoint"] += time.monotonic() - started
            if complete:
                checkpoint.restored(db, marker, [*keys, checkpoint.marker_key(partition, marker.seq)])
                state = DiskPartitionState(partition, db, self.cache_entries, self.stores)
                return state, "checkpoint", await self.fold(state, committed, start=marker.first)
            log.warning("checkpoint_incomplete", partition=partition, seq=marker.seq, parts=marker.parts,
                        read=len(keys))
            db.close()
            PartitionDB.destroy(path)
        state = DiskPartitionState(partition, PartitionDB(path), self.cache_entries, self.stores)
        return state, "changelog", await self.fold(state, committed)

    async def fold(self, state: DiskPartitionState, committed: Callable[[str], int | None], start: int = 0) -> int:
        """Apply every complete delta of the partition's changelog from offset ``start`` on, in log order,
        that the fence does not cover; returns how many.

        Each record's key is remembered for the next checkpoint's tombstones (``streams.checkpoint``).
        """
        started = time.monotonic()
        try:
            return await self._fold(state, committed, start)
        finally:
            self.seconds["fold deltas"] += time.monotonic() - started

    async def _fold(self, state: DiskPartitionState, committed: Callable[[str], int | None], start: int) -> int:
        assembler = parts.Assembler()
        folded = 0
        async for records in changelog.read(self.bootstrap, self.topic, state.partition, start=start):
            written = rocksdict.WriteBatch(raw_mode=True)
            for record in records:
                if record.value is None or record.key is None:
                    continue
                key = orjson.loads(record.key)  # JSON strings, as the Faust table wrote them
                written.put(checkpoint.WRITTEN + key.encode(), b"")
                if checkpoint.is_checkpoint_key(key):
                    continue  # an incomplete checkpoint's part (a complete one was loaded before)
                whole = assembler.add(parts.base_key(key) if parts.is_part(record.value) else key, record.value)
                if whole is None:
                    continue
                delta = Delta.decode(whole)
                since = committed(delta.topic)
                # a delta whose message is not committed yet may be skipped on replay: keep it to re-send
                state.keep_deltas = since is None or delta.offset >= since - 1
                if state.keep_deltas:
                    delta.encoded = whole
                if not state.is_applied(delta.topic, delta.offset):
                    state.apply(delta)
                    folded += 1
            state.db.write(written)
        state.keep_deltas = True
        return folded
