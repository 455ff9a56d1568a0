"""Offset-fenced partition state: how the hub counts exactly once without transactions.

Kafka transactions are not available on every broker we run on, so exactness
comes from the state design itself:

* All event topics share one partition count and events are keyed by dossier or
  citizen, so partition number ``P`` of every topic is owned by one worker, and
  all state about a subject lives in the state of ``P``.
* Processing one Kafka message yields one :class:`Delta`: counter increments,
  newly seen event ids, store updates, and the message's (topic, offset). The
  delta is written as **one** changelog record, so it is applied entirely or not
  at all.
* :class:`PartitionState` remembers the last applied offset per source topic (the
  fence). A message at or below the fence is already in the state and is skipped,
  so re-delivery after a crash or rebalance never counts twice; a message above
  it was never applied, so nothing is lost as long as the source offset is only
  committed after the delta is durable (Faust flushes its producer before it
  commits offsets).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.stores import CORE_STORES, META, StoreName, move_legacy_liveness

_ABSENT = object()

#: Deadlines one message reconciles at most, unless the processor says otherwise
#: (``LIENTHONG_DEADLINE_STEP``; docs/exactly-once.md §2a).
DEFAULT_DEADLINE_STEP = 500


#: Dedupe bucket of event ids from deltas written before buckets existed (kept for good).
LEGACY_BUCKET = ""


def dedupe_bucket(topic: str, day: str) -> str:
    """Event ids are remembered per source topic and local day of event time (``topic|day``)."""
    return f"{topic}|{day}"


@dataclass(frozen=True)
class SourcePosition:
    """Where a Kafka message came from; ``timestamp`` is the Kafka message time (ms)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


def counter_key(metric: str, ward: str, day: str) -> str:
    return f"{metric}|{ward}|{day}"


def split_counter_key(key: str) -> tuple[str, str, str]:
    metric, ward, day = key.rsplit("|", 2)
    return metric, ward, day


def delta_key(partition: int, topic: str, offset: int) -> str:
    """Table key of the delta produced by one source message (unique, replay-stable)."""
    return f"{partition:04d}|{topic}|{offset:012d}"


def partition_of_delta_key(key: str) -> int:
    return int(key.split("|", 1)[0])


@dataclass
class Delta:
    seq: int
    topic: str
    offset: int
    inc: dict[str, int] = field(default_factory=dict)
    #: Event ids seen for the first time, by dedupe bucket (``topic|local day``;
    #: see :data:`LEGACY_BUCKET` for changelogs written before buckets).
    seen: dict[str, list[str]] = field(default_factory=dict)
    put: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Side effects of the message, recorded with its state so that a replay the
    #: fence skips announces them again (at-least-once; docs/exactly-once.md §5):
    #: flags opened/resolved (``a``) and dead letters (``d``: {"v": base64 value,
    #: "h": [[header, value], ...]}). Not state: folding ignores them. Both are
    #: optional in the JSON, so changelogs written before them still fold.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    #: Dedupe buckets this message expired (their day fell out of the horizon), JSON ``x``.
    expired: list[str] = field(default_factory=list)
    #: A group commit's first source offset (JSON ``f``; ``offset`` is its last, the fence):
    #: the delta covers every message of ``topic`` from ``first`` to ``offset``. None: one message.
    first: int | None = None
    #: A group's audit records, one per accepted message in order (JSON ``u``): the chain's
    #: head in ``meta`` is only the last, and a replay must announce them all again. Side
    #: effect, not state. Empty for one message (its record is the head).
    audits: list[dict[str, Any]] = field(default_factory=list)
    #: The delta's encoding once made (:meth:`encode`), so the state on disk and the
    #: changelog share it; not part of the JSON.
    encoded: bytes | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out = {"s": self.seq, "t": self.topic, "o": self.offset, "i": self.inc, "n": self.seen, "p": self.put}
        if self.alerts:
            out["a"] = self.alerts
        if self.dead:
            out["d"] = self.dead
        if self.expired:
            out["x"] = self.expired
        if self.first is not None and self.first != self.offset:
            out["f"] = self.first
        if self.audits:
            out["u"] = self.audits
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Delta:
        seen = raw.get("n") or {}
        if isinstance(seen, list):  # written before dedupe buckets: one bucket that never expires
            seen = {LEGACY_BUCKET: seen}
        put = raw.get("p", {})
        move_legacy_liveness(put)
        return cls(raw["s"], raw["t"], raw["o"], raw.get("i", {}), seen, put,
                   raw.get("a", []), raw.get("d", []), raw.get("x", []), raw.get("f"), raw.get("u", []))

    def encode(self) -> bytes:
        """The table value: the delta's JSON, serialised once.

        The ``deltas`` table is bytes-valued (Faust's ``raw`` serializer), so these
        bytes go to the local store and the changelog as they are, instead of Faust
        JSON-encoding the dict once for each. Deltas are the largest thing a worker
        writes (one per message, ~200 KB for a 500-event batch), so they are encoded
        with orjson (~4x the standard library here). Same compact JSON document as
        before, so a changelog written by an older worker still folds.
        """
        return orjson.dumps(self.to_json())

    @classmethod
    def decode(cls, raw: bytes | str) -> Delta:
        return cls.from_json(orjson.loads(raw))


class PartitionState:
    """Everything one partition number knows, rebuilt by folding its deltas."""

    def __init__(self, partition: int, stores: Iterable[StoreName] = ()) -> None:
        self.partition = partition
        self.seq = 0
        self.applied: dict[str, int] = {}
        self.counters: Counter[str] = Counter()
        #: Event ids seen, by dedupe bucket (``topic|day``); buckets older than the
        #: dedupe horizon are dropped by a delta (``Delta.expired``), so memory is bounded.
        self.seen: dict[str, set[str]] = {}
        #: Each store a dict of key → JSON-able value: the core's and ``stores`` (the
        #: processor's reactions', ``Processor.stores``); a delta may add others.
        self.stores: dict[str, dict[str, Any]] = {name: {} for name in (*CORE_STORES, *stores)}
        #: Bumped on every applied delta; lets views cache work per version.
        self.version = 0
        #: In-memory indexes that rules derive from the stores (e.g. a deadline
        #: heap), by rule; never persisted, rebuilt from the stores after a fold.
        self.indexes: dict[str, Any] = {}

    def open_stores(self, names: Iterable[StoreName]) -> None:
        """Make sure each named store exists (a reaction's store nothing was written to yet)."""
        for name in names:
            if name not in self.stores:
                self.stores[name] = {}

    @classmethod
    def fold(cls, partition: int, deltas: Iterable[Delta], stores: Iterable[StoreName] = ()) -> PartitionState:
        state = cls(partition, stores)
        for delta in sorted(deltas, key=lambda d: d.seq):
            state.apply(delta)
        return state

    def is_applied(self, topic: str, offset: int) -> bool:
        return offset <= self.applied.get(topic, -1)

    def apply(self, delta: Delta) -> None:
        if self.is_applied(delta.topic, delta.offset):
            return
        self.counters.update(delta.inc)
        seen = self.seen
        for bucket, ids in delta.seen.items():
            kept = seen.get(bucket)
            if kept is None:
                seen[bucket] = set(ids)
            else:
                kept.update(ids)
        for bucket in delta.expired:
            seen.pop(bucket, None)
        for store, changes in delta.put.items():
            target = self.stores.setdefault(store, {})
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        self.applied[delta.topic] = delta.offset
        self.seq = max(self.seq, delta.seq + 1)
        self.version += 1

    def begin(self, topic: str, offset: int, deadline_step: int = DEFAULT_DEADLINE_STEP) -> Change:
        return Change(self, topic, offset, deadline_step)

    @property
    def watermark(self) -> int:
        return int(self.stores[META].get("watermark", 0))


class Change:
    """Writes of one message (or one group of a topic-partition's messages), readable
    before they are committed (read-your-writes)."""

    def __init__(self, state: PartitionState, topic: str, offset: int, deadline_step: int = DEFAULT_DEADLINE_STEP) -> None:
        self.state = state
        #: Due deadlines this message may still reconcile (``streams.timers``):
        #: a watermark jump past a backlog's deadlines is worked off in bounded steps,
        #: the rest on the partition's following messages, so no delta grows with it.
        self.deadline_budget = deadline_step
        #: Set when the budget ran out with due deadlines left (the next message goes on).
        self.deadlines_left = False
        self.topic = topic
        self.offset = offset
        self.inc: Counter[str] = Counter()
        self.seen: set[str] = set()
        self.seen_order: dict[str, list[str]] = {}
        self.expired: list[str] = []
        self.put: dict[str, dict[str, Any]] = {}
        #: Flags opened or resolved by this change, for the alerts topic.
        self.flag_changes: list[dict[str, Any]] = []
        #: Dead letters of the message as kept in its delta (``Delta.dead``).
        self.dead: list[dict[str, Any]] = []
        #: The feeds' clocks were advanced for this change's idle set (streams.clocks): the next
        #: message of the group moves them only if it moves its own feed's clock.
        self.clocks_at_rest = False
        #: A group commit's first offset (``Delta.first``), and its audit records (``Delta.audits``).
        self.first_offset: int | None = None
        self.audits: list[dict[str, Any]] = []
        #: The message being applied (set by the processor before its reactions run).
        self.source: SourcePosition | None = None
        #: The wall clock when the message is applied (agency liveness only); None: use its Kafka time.
        self.now_ms: int | None = None

    def count(self, metric: str, ward: str, day: str, n: int = 1) -> None:
        key = f"{metric}|{ward}|{day}"  # counter_key, inlined: several calls per event
        inc = self.inc
        inc[key] = inc.get(key, 0) + n

    def counted(self, metric: str, ward: str, day: str) -> int:
        """A counter's value with this change's increments (read-your-writes; the reactions before
        this one have counted the current event: ``Counting`` runs first)."""
        key = counter_key(metric, ward, day)
        return int(self.state.counters.get(key, 0) + self.inc.get(key, 0))

    def first_sighting(self, event_id: str, bucket: str) -> bool:
        """True the first time an event id is seen in its dedupe bucket (``topic|day``); records it.

        An event id always comes with the same event type (so topic) and event time,
        so a re-send lands in the bucket of the first sighting.
        """
        if event_id in self.seen:
            return False
        seen = self.state.seen
        kept = seen.get(bucket)
        if kept is not None and event_id in kept:
            return False
        legacy = seen.get(LEGACY_BUCKET)
        if legacy is not None and event_id in legacy:
            return False
        self.seen.add(event_id)
        order = self.seen_order.get(bucket)
        if order is None:
            self.seen_order[bucket] = [event_id]
        else:
            order.append(event_id)
        return True

    def expire(self, bucket: str) -> None:
        """Forget a dedupe bucket (its day fell out of the horizon), with this message's delta."""
        self.expired.append(bucket)

    def get(self, store: StoreName, key: str, default: Any = None) -> Any:
        pending = self.put.get(store)
        if pending is not None:
            value = pending.get(key, _ABSENT)
            if value is not _ABSENT:
                return default if value is None else value
        target = self.state.stores.get(store)
        return default if target is None else target.get(key, default)

    @property
    def watermark(self) -> int:
        """The partition's watermark with this change's writes (``PartitionState.watermark``'s twin)."""
        return int(self.get(META, "watermark", 0) or 0)

    def set(self, store: StoreName, key: str, value: Any) -> None:
        self.put.setdefault(store, {})[key] = value

    def delete(self, store: StoreName, key: str) -> None:
        self.set(store, key, None)

    def items(self, store: StoreName) -> Iterable[tuple[str, Any]]:
        """Current items of a store including this change's writes."""
        target = self.state.stores.get(store)
        merged = {} if target is None else dict(target.items())
        for key, value in self.put.get(store, {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged.items()

    def to_delta(self) -> Delta:
        return Delta(
            seq=self.state.seq,
            topic=self.topic,
            offset=self.offset,
            inc={k: v for k, v in self.inc.items() if v},
            seen=self.seen_order,
            put=self.put,
            alerts=self.flag_changes,
            dead=self.dead,
            expired=self.expired,
            first=self.first_offset,
            audits=self.audits,
        )

    def commit(self) -> Delta:
        delta = self.to_delta()
        self.state.apply(delta)
        return delta
