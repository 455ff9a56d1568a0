"""A partition's state on disk: one RocksDB database per partition, small caches in front.

:class:`streams.state.PartitionState` keeps everything in Python dicts, so a
worker's memory grows with every citizen, dossier, flag and event id it has
ever seen, and a restart must fold every delta again. :class:`DiskPartitionState`
keeps the same state in a rocksdict database of its own (outside Faust's
tables) and only bounded LRU caches in memory:

* **Per-subject stores** (citizens, dossiers, chains, flags, pending deadlines,
  rolled-up flags and their groups) are :class:`DiskMap` s: read through a
  cache of at most ``cache_entries`` values each, iterated from disk.
* **Seen event ids** are keys ``n|<bucket>|<id>`` (a bloom filter answers the
  usual "never seen" without a disk read); a bucket that leaves the dedupe
  horizon is one range delete.
* **Counters** (``c|<metric|ward|day>``) are on disk too, read through a cache
  of the recent ones (:class:`DiskCounters`): one per metric × ward × day
  of the partition, millions in a year of a city, which only the view needs
  summed (``streams.view.OwnedCounters`` keeps the sum over owned partitions).
* The small ``meta`` store stays in memory (bounded by topics and agencies) and
  is written through.
* **The fence** (``applied[topic]``), the sequence number and the message's
  encoded delta are written in the **same** ``WriteBatch`` as the state they
  guard: on disk, a message is applied entirely or not at all, so a worker
  restarted on its own database reads the fence and goes on, without folding
  the changelog (docs/exactly-once.md §4).

The encoded delta is kept (``k|<topic>|<offset>``) until its source offset is
committed (:meth:`PartitionDB.forget_kept_below`): a SIGKILL after the batch and
before the producer flushed leaves the database ahead of the changelog; the
message is then re-delivered, skipped by the fence, and its kept delta is sent
to the changelog again.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import rocksdict

from streams.city_counters import CityCounters
from streams.state import Delta, PartitionState
from streams.stores import CORE_STORES, LIVENESS, META, StoreName, legacy_liveness

#: Stores small enough to live in memory (and written through to disk); every other
#: store (per subject) is on disk, read through a bounded cache.
RESIDENT_STORES: tuple[StoreName, ...] = (META,)

#: Default values cached per disk store and partition (``LIENTHONG_STATE_CACHE``). 500 ran as
#: fast as 2,000 (issue 12, session 6), and a cached value holds its event's strings: at 2,000
#: the caches held most of the ~85 MiB of decoded events live at a 1 M backfill's peak (memray).
DEFAULT_CACHE_ENTRIES = 500
#: Counters cached per partition, as a multiple of ``cache_entries``: an event adds to several
#: (totals, type, agency, delay bucket), and the days being counted are read again and again
#: (one day of a backfill is ~1,700 counters per partition: 8,000 at the default cache).
COUNTER_CACHE_FACTOR = 16

_ID = b"m|id"
#: Database key: the changelog record a database was last rebuilt up to (``streams.restore``).
RESTORED_TAIL = b"m|restored-tail"
_SEQ = b"m|seq"
_MISSING = object()
#: Cached for a key known to be absent on disk: rules ask far more often whether a flag,
#: a timer or a group exists than they find one, and each unanswered ask was a RocksDB read.
_ABSENT = object()


def _end_of(prefix: bytes) -> bytes:
    """The smallest key after every key starting with ``prefix`` (prefixes end in ``|``, and ``}`` follows it)."""
    return prefix[:-1] + b"}"


#: One block cache for every partition database of the process, not one each.
BLOCK_CACHE_BYTES = 16 * 1024 * 1024
#: Memtables of every database of the process together: past this, the database written
#: to flushes. Per database (4 MiB × 2 × 16 databases) they held up to 128 MiB, and 47 MB
#: at a 1 M-card worker's peak (memray, issue 12).
WRITE_BUFFER_BYTES = 32 * 1024 * 1024


class _Budget:
    """The process's one block cache and one write-buffer manager, made on first use.

    Index and filter blocks stay outside it, held by each table reader: charged to a
    small shared cache they were evicted and read again on every lookup, which made a
    backfill's worker ten times slower (issue 12, session 8).
    """

    cache: rocksdict.Cache | None = None
    write_buffers: rocksdict.WriteBufferManager | None = None
    #: Open databases (for :func:`memory_usage`).
    open: set[PartitionDB] = set()

    @classmethod
    def options(cls) -> rocksdict.Options:
        if cls.cache is None or cls.write_buffers is None:
            cls.cache = rocksdict.Cache(BLOCK_CACHE_BYTES)
            cls.write_buffers = rocksdict.WriteBufferManager(WRITE_BUFFER_BYTES, False)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(cls.cache)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_size(4 * 1024 * 1024)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(cls.write_buffers)
        return options


def memory_usage() -> dict[str, int]:
    """Bytes RocksDB holds for the process: the shared block cache (data blocks),
    memtables, and table readers (index and filter blocks; ``lienthong_state_store_memory_bytes``)."""
    memtables = readers = 0
    for db in list(_Budget.open):
        memtables += db.db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        readers += db.db.property_int_value("rocksdb.estimate-table-readers-mem") or 0
    cache = _Budget.cache.get_usage() if _Budget.cache is not None else 0
    return {"block_cache": cache, "memtables": memtables, "table_readers": readers}


class PartitionDB:
    """The rocksdict database of one partition (raw bytes keys and values)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = _Budget.options()
        self.path = path
        self.db = rocksdict.Rdict(str(path), options)
        _Budget.open.add(self)
        writer = self.db.get(_ID)
        if writer is None:
            writer = uuid.uuid4().hex.encode()
            self.db.put(_ID, writer)
        #: Names this database in the changelog records it writes (``lienthong.writer``).
        self.writer: str = writer.decode()

    def get(self, key: bytes) -> bytes | None:
        value = self.db.get(key)
        return None if value is None else bytes(value)

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Keys and values starting with ``prefix``, in key order, from ``prefix + start`` on."""
        for key, value in self.db.items(from_key=prefix + start):
            assert isinstance(key, bytes) and isinstance(value, bytes)  # raw mode
            if not key.startswith(prefix):
                return
            yield key, value

    def scan_keys(self, prefix: bytes, start: bytes = b"") -> Iterator[bytes]:
        """Keys starting with ``prefix``, in key order, from ``prefix + start`` on (values not read)."""
        for key in self.db.keys(from_key=prefix + start):
            assert isinstance(key, bytes)  # raw mode
            if not key.startswith(prefix):
                return
            yield key

    def write(self, batch: rocksdict.WriteBatch) -> None:
        self.db.write(batch)

    def kept(self, topic: str, offset: int) -> bytes | None:
        """The encoded delta of a message, while its offset is not committed."""
        return self.get(_kept_key(topic, offset))

    def forget_kept_below(self, topic: str, offset: int) -> None:
        """Drop the kept deltas of ``topic`` below ``offset`` (committed: the changelog has them)."""
        self.db.delete_range(b"k|%s|" % topic.encode(), _kept_key(topic, offset))

    def keeps_every_delta(self) -> bool:
        """Every delta this database applied is still kept: none was ever committed (and forgotten)."""
        raw_seq = self.get(_SEQ)
        applied = int(raw_seq) if raw_seq is not None else 0
        kept = sum(1 for _ in islice(self.scan_keys(b"k|"), applied))
        return kept >= applied

    def close(self) -> None:
        _Budget.open.discard(self)
        self.db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        """Remove a database that is not to be trusted (another worker wrote after it)."""
        shutil.rmtree(path, ignore_errors=True)


def _kept_key(topic: str, offset: int) -> bytes:
    return b"k|%s|%012d" % (topic.encode(), offset)


def _trim(cache: dict[str, Any], limit: int) -> None:
    """Past ``limit`` entries, drop the older half (insertion order).

    Cheaper than an LRU's upkeep on every read (an ``OrderedDict`` moved and popped per
    lookup was a tenth of a disk worker's processor time): the caches are read far more
    often than they miss, and what a backfill reads again is what it wrote last.
    """
    if len(cache) > limit:
        for old in list(islice(cache, len(cache) // 2)):
            del cache[old]


class DiskMap(MutableMapping[str, Any]):
    """One store of one partition on disk, read through a cache of at most ``limit`` values."""

    def __init__(self, db: PartitionDB, store: str, limit: int) -> None:
        self.db = db
        self.prefix = b"s|%s|" % store.encode()
        self.limit = max(2, limit)
        self.cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]  # hot path: no KeyError
        cache = self.cache
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            return default if value is _ABSENT else value
        raw = self.db.db.get(self.prefix + key.encode())
        if raw is None:
            # not remembered: most lookups are of keys that do not exist (a rule asking
            # whether a new citizen has a flag), rarely asked twice; caching them churned the
            # cache and cost more than reading RocksDB again (+7-11% processor on disk, session 10)
            return default
        value = orjson.loads(raw)
        self._remember(key, value)
        return value

    def _remember(self, key: str, value: Any) -> None:
        cache = self.cache
        cache.pop(key, None)  # re-inserted: the newest
        cache[key] = value
        if len(cache) > self.limit:
            _trim(cache, self.limit)

    def write(self, batch: rocksdict.WriteBatch, key: str, value: Any) -> None:
        """Put (``None``: delete) ``key`` in ``batch``; the cache follows at once."""
        if value is None:
            batch.delete(self.prefix + key.encode())
            self._remember(key, _ABSENT)
        else:
            batch.put(self.prefix + key.encode(), orjson.dumps(value))
            self._remember(key, value)

    def __setitem__(self, key: str, value: Any) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        self.write(batch, key, value)
        self.db.write(batch)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self[key] = None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING) is not _MISSING

    def __iter__(self) -> Iterator[str]:
        size = len(self.prefix)
        for key, _ in self.db.scan(self.prefix):
            yield key[size:].decode()

    def keys_from(self, start: str) -> Iterator[str]:
        """This store's keys from ``start`` on, in key order (``streams.timers.OrderedKeys``)."""
        size = len(self.prefix)
        for key in self.db.scan_keys(self.prefix, start.encode()):
            yield key[size:].decode()

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]  # an iterator, not a view: read from disk
        size = len(self.prefix)
        for key, raw in self.db.scan(self.prefix):
            yield key[size:].decode(), orjson.loads(raw)

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for _, value in self.items():
            yield value

    def __len__(self) -> int:
        return sum(1 for _ in self.db.scan(self.prefix))


class DiskCounters:
    """A partition's counters on disk, read through a cache of about ``limit`` values.

    Reads as a ``Counter`` is read (``get``, ``[]`` giving 0 for an absent key,
    ``items`` streamed from disk, which the cache writes through to); written only
    by :meth:`add_all`, in the write batch of the delta that counts. The cache is
    a plain dict that drops its older half when full: a counter is added to many
    times per message, so its upkeep must cost less than an LRU's.
    """

    PREFIX = b"c|"

    def __init__(self, db: PartitionDB, limit: int) -> None:
        self.db = db
        self.limit = max(2, limit)
        self.cache: dict[str, int] = {}

    def get(self, key: str, default: int = 0) -> int:
        value = self.cache.get(key)
        if value is not None:
            return value
        raw = self.db.db.get(self.PREFIX + key.encode())
        value = 0 if raw is None else int(raw)
        self._remember(key, value)
        return default if raw is None else value

    def __getitem__(self, key: str) -> int:
        return self.get(key, 0)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.db.get(self.PREFIX + key.encode()) is not None

    def _remember(self, key: str, value: int) -> None:
        self.cache[key] = value
        _trim(self.cache, self.limit)

    def add_all(self, batch: rocksdict.WriteBatch, inc: Mapping[str, int]) -> None:
        """Add a delta's increments, each written to ``batch`` as its new value."""
        cache, read, put, prefix = self.cache, self.db.db.get, batch.put, self.PREFIX
        for key, n in inc.items():
            disk_key = prefix + key.encode()
            kept = cache.get(key)
            if kept is None:
                raw = read(disk_key)
                kept = 0 if raw is None else int(raw)
            cache[key] = kept + n
            put(disk_key, b"%d" % (kept + n))
        _trim(cache, self.limit)

    def items(self) -> Iterator[tuple[str, int]]:
        size = len(self.PREFIX)
        for key, raw in self.db.scan(self.PREFIX):
            yield key[size:].decode(), int(raw)

    def __iter__(self) -> Iterator[str]:
        for key, _ in self.items():
            yield key

    def values(self) -> Iterator[int]:
        for _, value in self.items():
            yield value

    def __len__(self) -> int:
        return sum(1 for _ in self.db.scan(self.PREFIX))


class ResidentMap(dict[str, Any]):
    """A small store kept whole in memory and written through to disk (``meta``)."""

    def __init__(self, db: PartitionDB, store: str) -> None:
        super().__init__()
        self.prefix = b"s|%s|" % store.encode()
        size = len(self.prefix)
        for key, raw in db.scan(self.prefix):
            super().__setitem__(key[size:].decode(), orjson.loads(raw))

    def write(self, batch: rocksdict.WriteBatch, key: str, value: Any) -> None:
        if value is None:
            batch.delete(self.prefix + key.encode())
            self.pop(key, None)
        else:
            batch.put(self.prefix + key.encode(), orjson.dumps(value))
            self[key] = value


class SeenBucket:
    """Event ids of one dedupe bucket, on disk: ``id in bucket`` is one lookup."""

    def __init__(self, db: PartitionDB, bucket: str) -> None:
        self.db = db
        self.prefix = b"n|%s|" % bucket.encode()

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.db.get(self.prefix + event_id.encode()) is not None


class SeenIds:
    """Seen event ids by dedupe bucket, as ``PartitionState.seen`` is read (``get``, iteration)."""

    def __init__(self, db: PartitionDB) -> None:
        self.db = db
        self.buckets: dict[str, SeenBucket] = {
            key[2:].decode(): SeenBucket(db, key[2:].decode()) for key, _ in db.scan(b"b|")
        }

    def get(self, bucket: str) -> SeenBucket | None:
        return self.buckets.get(bucket)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.buckets))

    def __contains__(self, bucket: object) -> bool:
        return bucket in self.buckets

    def add(self, batch: rocksdict.WriteBatch, bucket: str, ids: list[str]) -> None:
        if bucket not in self.buckets:
            self.buckets[bucket] = SeenBucket(self.db, bucket)
            batch.put(b"b|" + bucket.encode(), b"")
        prefix = self.buckets[bucket].prefix
        for event_id in ids:
            batch.put(prefix + event_id.encode(), b"")

    def forget(self, batch: rocksdict.WriteBatch, bucket: str) -> None:
        kept = self.buckets.pop(bucket, None)
        if kept is not None:
            batch.delete_range(kept.prefix, _end_of(kept.prefix))
            batch.delete(b"b|" + bucket.encode())


class DiskPartitionState(PartitionState):
    """A :class:`PartitionState` whose state lives in a :class:`PartitionDB`.

    Opening it on an existing database *is* the restore: fence, sequence,
    counters and ``meta`` are read, the rest is read on demand.
    """

    def __init__(
        self, partition: int, db: PartitionDB, cache_entries: int = DEFAULT_CACHE_ENTRIES,
        stores: tuple[StoreName, ...] = (),
    ) -> None:
        super().__init__(partition)
        self.db = db
        #: Keep each applied delta's encoding until its offset is committed (False while folding a changelog).
        self.keep_deltas = True
        raw_seq = db.get(_SEQ)
        self.seq = int(raw_seq) if raw_seq is not None else 0
        self.applied = {key[2:].decode(): int(value) for key, value in db.scan(b"f|")}
        self.cache_entries = cache_entries
        self.counters = DiskCounters(db, COUNTER_CACHE_FACTOR * cache_entries)  # type: ignore[assignment]
        self.seen = SeenIds(db)  # type: ignore[assignment]  # the same reads as the dict of sets
        self.stores = {name: ResidentMap(db, name) for name in RESIDENT_STORES}
        self.open_stores((*CORE_STORES, *stores))
        self._move_legacy_liveness()
        #: Its counters summed ahead of adoption (``streams.restore.DiskStates.warm_up``), so
        #: the view adds them a row at a time instead of reading every counter again.
        self.counter_totals: CityCounters | None = None

    def sum_counters(self) -> None:
        """Read every counter once into :attr:`counter_totals` (a restart's longest step at 2 M events)."""
        totals = CityCounters()
        totals.update(self.counters.items())
        self.counter_totals = totals

    def open_stores(self, names: Iterable[StoreName]) -> None:
        for name in names:
            if name not in self.stores:
                self.stores[name] = DiskMap(self.db, name, self.cache_entries)  # type: ignore[assignment]

    def _move_legacy_liveness(self) -> None:
        """A database written before the ``liveness`` store kept liveness in ``meta``: move it, once."""
        meta: Any = self.stores[META]
        legacy = legacy_liveness(meta)
        agencies: Any = self.stores.get(LIVENESS)
        if not legacy or agencies is None:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for agency, key in legacy.items():
            agencies.write(batch, agency, meta[key])
            meta.write(batch, key, None)
        self.db.write(batch)

    @property
    def is_new(self) -> bool:
        """Nothing was ever applied to this database."""
        return not self.applied

    def apply(self, delta: Delta) -> None:
        if self.is_applied(delta.topic, delta.offset):
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        counters: DiskCounters = self.counters  # type: ignore[assignment]
        counters.add_all(batch, delta.inc)
        seen: SeenIds = self.seen  # type: ignore[assignment]
        for bucket, ids in delta.seen.items():
            seen.add(batch, bucket, ids)
        for bucket in delta.expired:
            seen.forget(batch, bucket)
        for store, changes in delta.put.items():
            target: Any = self.stores.get(store)
            if target is None:  # a store this version does not know: kept on disk all the same
                target = self.stores[store] = DiskMap(self.db, store, 0)  # type: ignore[assignment]
            for key, value in changes.items():
                target.write(batch, key, value)
        batch.put(b"f|" + delta.topic.encode(), str(delta.offset).encode())
        self.applied[delta.topic] = delta.offset
        self.seq = max(self.seq, delta.seq + 1)
        batch.put(_SEQ, str(self.seq).encode())
        if self.keep_deltas:
            if delta.encoded is None:
                delta.encoded = delta.encode()
            batch.put(_kept_key(delta.topic, delta.offset), delta.encoded)
        self.db.write(batch)
        self.version += 1
