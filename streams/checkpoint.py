"""Checkpoints: a partition's state on disk written into its changelog, so a restore reads the state, not the history.

A worker that has no trusted database for a partition (a new machine, or the
partition moved) rebuilds it from the ``deltas`` changelog. Folding every delta
ever written takes time proportional to the history (98 s at 2 M cards). With
checkpoints it takes time proportional to the state:

* **When.** Once the changelog bytes a partition wrote since its last checkpoint
  reach ``LIENTHONG_CHECKPOINT_BYTES`` *and* the size of that checkpoint, a new
  one starts: a checkpoint never costs more than the deltas a restore may then
  skip, so writing them at most doubles what the changelog receives.
* **What.** A RocksDB checkpoint of the partition's database (hard links to its
  files, under ``<state dir>/checkpoint/p<P>``, removed once sent), taken between
  two groups (state, fence and sequence ``S`` consistent), as key-value pairs in
  parts of at most ``LIENTHONG_MAX_RECORD_BYTES`` keyed ``<P>|ckpt|<S>|<index>``.
  The database's own bookkeeping (its id, what it was restored up to, this
  progress, the keys still to tombstone) is left out.
* **Bounded work per message.** One part is sent after each group the partition
  commits (and one a second while it is idle), from where the last part ended:
  the copy keeps the checkpoint consistent while later messages go on. (Not a
  RocksDB snapshot: rocksdict's ``Snapshot.items`` reads the live database.)
* **Done only when all of it is durable.** After the last part, the worker waits
  for the broker to acknowledge every part, then sends the marker
  ``<P>|ckpt|<S>|done`` naming the offset of the first part, the number of parts
  and their set id. Only after the marker is acknowledged are **tombstones**
  sent for what the checkpoint covers (the deltas and the previous checkpoint
  written before the snapshot), so a broker that compacts the changelog keeps
  it in proportion to the state (a bounded batch per step, like the parts). A
  worker killed before the marker leaves an
  incomplete checkpoint that no restore reads, over deltas that are all still
  there.
* **Restore** (``streams.restore``): every changelog record carries the offset
  of its partition's newest marker (header ``lienthong.checkpoint``), so the last
  record names it; load its parts (all of them, or the
  restore falls back to folding every delta); then fold the deltas from the
  first part's offset on, the fence skipping those the checkpoint covers.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson
import rocksdict

from hubbase.logs import get_logger
from streams import changelog, faults, parts
from streams.store import RESTORED_TAIL, DiskPartitionState, PartitionDB

log = get_logger(__name__)

MAGIC = b"\x00LTCKPT|"
_LENGTHS = struct.Struct(">II")
#: Database key of a partition's checkpoint progress: changelog bytes since the last one, and its size.
PROGRESS = b"m|checkpoint"
#: Database keys ``t|<changelog key>``: records written since the last checkpoint, tombstoned by the next.
WRITTEN = b"t|"
#: The database's own bookkeeping, never part of a checkpoint. Kept deltas (``k|``) are left out
#: too: every side effect and delta of the messages a checkpoint covers is flushed before its
#: marker is sent, so a restore from it has nothing of theirs to send again.
_LOCAL = (b"m|id", RESTORED_TAIL, PROGRESS)
_LOCAL_PREFIXES = (WRITTEN, b"k|")
#: Tombstones a checkpoint sends per step (per group of its partition, or per second).
TOMBSTONES_PER_STEP = 2000

#: ``send(key, value, headers)``: the record onto the partition's changelog (``None``: a tombstone);
#: awaited until the client queued it, it returns the broker's acknowledgement to await.
Send = Callable[[str, bytes | None, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]


def part_key(partition: int, seq: int, index: int) -> str:
    return f"{partition:04d}|ckpt|{seq:012d}|{index:06d}"


def marker_key(partition: int, seq: int) -> str:
    return f"{partition:04d}|ckpt|{seq:012d}|done"


def is_checkpoint_key(key: str) -> bool:
    """A checkpoint's part or marker (a fold of deltas skips them)."""
    return key[4:10] == "|ckpt|"


def encode_pairs(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_LENGTHS.pack(len(key), len(value)) + key + value for key, value in pairs)


def decode_pairs(payload: bytes) -> Iterator[tuple[bytes, bytes]]:
    view, at, end, size = memoryview(payload), 0, len(payload), _LENGTHS.size
    while at < end:
        key_len, value_len = _LENGTHS.unpack_from(view, at)
        at += size
        yield bytes(view[at:at + key_len]), bytes(view[at + key_len:at + key_len + value_len])
        at += key_len + value_len


def encode_part(set_id: str, index: int, payload: bytes) -> bytes:
    return MAGIC + b"%s|%d|" % (set_id.encode(), index) + payload


def decode_part(value: bytes) -> tuple[str, int, bytes] | None:
    """(set id, index, payload) of a part record; None for anything else."""
    if not value.startswith(MAGIC):
        return None
    set_id, index, payload = value[len(MAGIC):].split(b"|", 2)
    return set_id.decode(), int(index), payload


@dataclass(frozen=True)
class Marker:
    """A complete checkpoint: sequence ``seq`` covered, in ``parts`` parts of set ``set_id`` from offset ``first``."""

    seq: int
    first: int
    parts: int
    set_id: str
    size: int
    #: The marker's own offset (the parts are all before it).
    offset: int = -1

    def encode(self) -> bytes:
        return orjson.dumps({"seq": self.seq, "first": self.first, "parts": self.parts, "set": self.set_id,
                             "bytes": self.size})

    @classmethod
    def decode(cls, value: bytes, offset: int) -> Marker:
        fields = orjson.loads(value)
        return cls(int(fields["seq"]), int(fields["first"]), int(fields["parts"]), str(fields["set"]),
                   int(fields["bytes"]), offset)


def local(key: bytes) -> bool:
    return key.startswith(_LOCAL_PREFIXES) or key in _LOCAL


@dataclass
class _Writing:
    """A checkpoint being written: its snapshot and how far its parts have gone."""

    state: DiskPartitionState
    seq: int
    set_id: str
    #: The database as it was at ``seq`` (a RocksDB checkpoint, opened), read part by part.
    snapshot: PartitionDB | None
    #: The last key sent (the next part starts after it); None: nothing sent yet.
    after: bytes | None = None
    #: The marker is acknowledged: the checkpoint counts, its tombstones go out.
    marked: bool = False
    #: The last changelog key tombstoned (the next batch starts after it), and how many so far.
    tombstoned: bytes = b""
    tombstones: int = 0
    acks: list[Awaitable[Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Progress:
    """A partition's checkpoint bookkeeping, kept in its database (``m|checkpoint``)."""

    #: Changelog bytes written since the last checkpoint started, and that checkpoint's size.
    since: int = 0
    last: int = 0
    #: The changelog offset of the newest complete checkpoint's marker (None: none known).
    marker: int | None = None

    def encode(self) -> bytes:
        return orjson.dumps({"since": self.since, "last": self.last, "marker": self.marker})

    @classmethod
    def decode(cls, raw: bytes | None) -> Progress:
        fields = orjson.loads(raw) if raw else {}
        marker = fields.get("marker")
        return cls(int(fields.get("since", 0)), int(fields.get("last", 0)), None if marker is None else int(marker))


class Checkpoints:
    """The checkpoints of one worker's partitions (state on disk)."""

    def __init__(self, to_changelog: Callable[[int], Send], flush_deltas: Callable[[], Awaitable[None]],
                 flush: Callable[[], Awaitable[None]], threshold: int, record_bytes: int,
                 fault: faults.Fault | None = None) -> None:
        #: ``to_changelog(partition)``: a :data:`Send` onto that partition of the changelog
        #: (``Hub.checkpoint_sender``, through ``streams.output``).
        self.to_changelog = to_changelog
        #: Hands the deltas queued in Faust's producer buffer on to the client (before a snapshot's first part).
        self.flush_deltas = flush_deltas
        #: Flushes the producer: every record sent so far (deltas, side effects) is on the broker.
        self.flush = flush
        #: ``LIENTHONG_CHECKPOINT_BYTES`` (0: no checkpoints).
        self.threshold = threshold
        self.part_bytes = max(4096, record_bytes - parts.OVERHEAD)
        self.fault = fault if fault is not None and fault.kind in faults.CHECKPOINT else None
        self.writing: dict[int, _Writing] = {}
        self.progress: dict[int, Progress] = {}
        #: Checkpoints completed and parts sent since start (metrics, tests).
        self.completed = 0
        self.parts_sent = 0

    def _progress(self, state: DiskPartitionState) -> Progress:
        progress = self.progress.get(state.partition)
        if progress is None:
            progress = self.progress[state.partition] = Progress.decode(state.db.get(PROGRESS))
        return progress

    def marker_of(self, state: DiskPartitionState) -> int | None:
        """The offset of the partition's newest complete checkpoint marker, which every changelog record
        it writes carries (``lienthong.checkpoint``): a restore finds it from the last record alone."""
        return self._progress(state).marker

    def written(self, state: DiskPartitionState, keys: list[str], size: int) -> None:
        """Changelog records just sent for ``state``'s partition: remembered for the next checkpoint's tombstones."""
        progress = self._progress(state)
        progress.since += size
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key in keys:
            batch.put(WRITTEN + key.encode(), b"")
        batch.put(PROGRESS, progress.encode())
        state.db.write(batch)

    def due(self, state: DiskPartitionState) -> bool:
        if not self.threshold or state.partition in self.writing:
            return False
        progress = self._progress(state)
        return progress.since >= max(self.threshold, progress.last)

    async def after_group(self, state: DiskPartitionState) -> None:
        """Start a checkpoint that is due, or send the next part of the one being written."""
        writing = self.writing.get(state.partition)
        if writing is None and self.due(state):
            await self.flush_deltas()  # every delta the snapshot covers goes before its first part
            writing = self.writing[state.partition] = _Writing(state, state.seq, os.urandom(8).hex(),
                                                               copy_of(state.db))
            self.progress[state.partition].since = 0
            log.info("checkpoint_started", partition=state.partition, seq=state.seq)
        if writing is not None:
            await self.step(writing)

    async def tick(self) -> None:
        """A part for every checkpoint being written (partitions whose messages stopped still finish theirs)."""
        for writing in list(self.writing.values()):
            await self.step(writing)

    def abandon(self, partition: int) -> None:
        """The partition was revoked: its checkpoint is left incomplete (before its database is closed)."""
        self.progress.pop(partition, None)
        writing = self.writing.pop(partition, None)
        if writing is not None:
            _drop(writing)
            log.info("checkpoint_abandoned", partition=partition, seq=writing.seq)

    def _next_pairs(self, writing: _Writing) -> list[tuple[bytes, bytes]]:
        """Pairs of the snapshot after ``writing.after``, up to a part's size (empty: the snapshot is done)."""
        assert writing.snapshot is not None
        pairs: list[tuple[bytes, bytes]] = []
        size = 0
        for key, value in writing.snapshot.scan(b"", writing.after or b""):
            if key == writing.after or local(key):
                continue
            grown = size + len(key) + len(value) + _LENGTHS.size
            if grown > self.part_bytes and pairs:
                break  # the next part starts with it
            pairs.append((key, value))
            size = grown
        return pairs

    async def step(self, writing: _Writing) -> None:
        """The checkpoint's next bounded piece of work: a part; the marker; or a batch of tombstones."""
        async with writing.lock:
            if self.writing.get(writing.state.partition) is not writing:
                return  # abandoned (revoked) or done
            if writing.marked:
                await self._tombstones(writing)
                return
            pairs = self._next_pairs(writing)
            if pairs:
                await self._part(writing, pairs)
            else:
                await self._mark(writing)

    def _headers(self, writing: _Writing) -> list[tuple[str, bytes]]:
        return changelog.headers_of(writing.state.db.writer, writing.state.seq, self.marker_of(writing.state))

    async def _part(self, writing: _Writing, pairs: list[tuple[bytes, bytes]]) -> None:
        partition = writing.state.partition
        writing.after = pairs[-1][0]
        key = part_key(partition, writing.seq, len(writing.keys))
        value = encode_part(writing.set_id, len(writing.keys), encode_pairs(pairs))
        writing.acks.append(await self.to_changelog(partition)(key, value, self._headers(writing)))
        writing.keys.append(key)
        writing.size += len(value)
        self.parts_sent += 1
        if self.fault is not None and self.fault.kind == "exit_during_checkpoint" \
                and self.parts_sent == self.fault.at_message:
            await asyncio.gather(*writing.acks)
            faults.exit_now(self.fault)

    async def _mark(self, writing: _Writing) -> None:
        """Every part acknowledged and the producer flushed: the marker, which makes the checkpoint count."""
        partition, state = writing.state.partition, writing.state
        acks = await asyncio.gather(*writing.acks) if writing.acks else []
        await self.flush()  # the side effects of the messages covered too
        if self.writing.get(partition) is not writing:
            return  # revoked while waiting
        first = acks[0].offset if acks else -1
        marker = Marker(writing.seq, first, len(writing.keys), writing.set_id, writing.size)
        done_key = marker_key(partition, writing.seq)
        done = await (await self.to_changelog(partition)(done_key, marker.encode(), self._headers(writing)))
        if self.fault is not None and self.fault.kind == "exit_after_checkpoint" \
                and self.completed + 1 == self.fault.at_message:
            faults.exit_now(self.fault)
        if self.writing.get(partition) is not writing:
            return
        writing.marked = True
        self.completed += 1
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key in (*writing.keys, done_key):  # tombstoned by the next checkpoint
            batch.put(WRITTEN + key.encode(), b"")
        progress = self._progress(state)
        progress.last = writing.size
        progress.marker = done.offset
        batch.put(PROGRESS, progress.encode())
        state.db.write(batch)
        log.info("checkpoint_written", partition=partition, seq=writing.seq, parts=len(writing.keys),
                 bytes=writing.size)

    async def _tombstones(self, writing: _Writing) -> None:
        """Up to :data:`TOMBSTONES_PER_STEP` tombstones for records written before the checkpoint's copy
        (listed in it as ``t|<key>``); the last step ends the checkpoint."""
        assert writing.snapshot is not None
        partition = writing.state.partition
        covered = list(islice(writing.snapshot.scan_keys(WRITTEN, writing.tombstoned), TOMBSTONES_PER_STEP + 1))
        if covered and covered[0] == WRITTEN + writing.tombstoned:
            covered = covered[1:]  # sent by the step before
        covered = covered[:TOMBSTONES_PER_STEP]
        send = self.to_changelog(partition)
        for written in covered:
            await send(written[len(WRITTEN):].decode(), None, self._headers(writing))
        if self.writing.get(partition) is not writing:
            return  # revoked meanwhile: its database is closed
        if covered:
            batch = rocksdict.WriteBatch(raw_mode=True)
            for written in covered:
                batch.delete(written)
            writing.state.db.write(batch)
            writing.tombstoned = covered[-1][len(WRITTEN):]
            writing.tombstones += len(covered)
            return
        del self.writing[partition]
        _drop(writing)
        log.info("checkpoint_tombstones_sent", partition=partition, seq=writing.seq, tombstones=writing.tombstones)


def copy_of(db: PartitionDB) -> PartitionDB:
    """The database as it is now, in a RocksDB checkpoint of its own (hard links: cheap), opened."""
    path = db.path.parent / "checkpoint" / db.path.name
    PartitionDB.destroy(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rocksdict.Checkpoint(db.db).create_checkpoint(str(path))
    return PartitionDB(path)


def _drop(writing: _Writing) -> None:
    if writing.snapshot is not None:
        writing.snapshot.close()
        PartitionDB.destroy(writing.snapshot.path)
        writing.snapshot = None


def restored(db: PartitionDB, marker: Marker, keys: list[str]) -> None:
    """A database just loaded from ``marker``'s checkpoint: its records are the next one's to tombstone,
    and the next one is due after as many changelog bytes as this one has."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key in keys:
        batch.put(WRITTEN + key.encode(), b"")
    batch.put(PROGRESS, Progress(0, marker.size, marker.offset).encode())
    db.write(batch)


async def marker_at(bootstrap: str, topic: str, partition: int, offset: int) -> Marker | None:
    """The checkpoint marker at ``offset`` of a changelog partition (None: that record is not one)."""
    async for records in changelog.read(bootstrap, topic, partition, start=offset, stop=offset + 1):
        for record in records:
            if record.value is None or record.key is None:
                continue
            key = orjson.loads(record.key)
            if isinstance(key, str) and is_checkpoint_key(key) and key.endswith("|done"):
                return Marker.decode(record.value, record.offset)
    return None


async def load(bootstrap: str, topic: str, partition: int, marker: Marker, db: PartitionDB) -> tuple[bool, list[str]]:
    """Write the checkpoint's pairs into ``db``; (all parts were there, the changelog keys read)."""
    expected = 0
    keys: list[str] = []
    async for records in changelog.read(bootstrap, topic, partition, start=marker.first, stop=marker.offset):
        for record in records:
            if record.value is None or record.key is None:
                continue
            key = orjson.loads(record.key)
            part = decode_part(record.value) if isinstance(key, str) and is_checkpoint_key(key) else None
            if part is None or part[0] != marker.set_id or part[1] < expected:
                continue  # another checkpoint's part, a delta, or a part sent twice
            if part[1] > expected:
                return False, keys
            batch = rocksdict.WriteBatch(raw_mode=True)
            for pair_key, pair_value in decode_pairs(part[2]):
                batch.put(pair_key, pair_value)
            db.write(batch)
            keys.append(key)
            expected += 1
    return expected == marker.parts, keys
