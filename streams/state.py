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

_ABSENT = object()


#: Stores kept per partition, each a dict of key → JSON-able value.
STORES = ("meta", "flags", "chains", "dossiers", "citizens", "pending", "rolled", "rollups")


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
    seen: list[str] = field(default_factory=list)
    put: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Side effects of the message, recorded with its state so that a replay the
    #: fence skips announces them again (at-least-once; docs/exactly-once.md §5):
    #: flags opened/resolved (``a``) and dead letters (``d``: {"v": base64 value,
    #: "h": [[header, value], ...]}). Not state: folding ignores them. Both are
    #: optional in the JSON, so changelogs written before them still fold.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {"s": self.seq, "t": self.topic, "o": self.offset, "i": self.inc, "n": self.seen, "p": self.put}
        if self.alerts:
            out["a"] = self.alerts
        if self.dead:
            out["d"] = self.dead
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Delta:
        return cls(raw["s"], raw["t"], raw["o"], raw.get("i", {}), raw.get("n", []), raw.get("p", {}),
                   raw.get("a", []), raw.get("d", []))

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

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.seq = 0
        self.applied: dict[str, int] = {}
        self.counters: Counter[str] = Counter()
        self.seen: set[str] = set()
        self.stores: dict[str, dict[str, Any]] = {name: {} for name in STORES}
        #: Bumped on every applied delta; lets views cache work per version.
        self.version = 0
        #: In-memory indexes that rules derive from the stores (e.g. a deadline
        #: heap), by rule; never persisted, rebuilt from the stores after a fold.
        self.indexes: dict[str, Any] = {}

    @classmethod
    def fold(cls, partition: int, deltas: Iterable[Delta]) -> PartitionState:
        state = cls(partition)
        for delta in sorted(deltas, key=lambda d: d.seq):
            state.apply(delta)
        return state

    def is_applied(self, topic: str, offset: int) -> bool:
        return offset <= self.applied.get(topic, -1)

    def apply(self, delta: Delta) -> None:
        if self.is_applied(delta.topic, delta.offset):
            return
        self.counters.update(delta.inc)
        self.seen.update(delta.seen)
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

    def begin(self, topic: str, offset: int) -> Change:
        return Change(self, topic, offset)

    @property
    def watermark(self) -> int:
        return int(self.stores["meta"].get("watermark", 0))


class Change:
    """Writes of one message, readable before they are committed (read-your-writes)."""

    def __init__(self, state: PartitionState, topic: str, offset: int) -> None:
        self.state = state
        self.topic = topic
        self.offset = offset
        self.inc: Counter[str] = Counter()
        self.seen: set[str] = set()
        self.seen_order: list[str] = []
        self.put: dict[str, dict[str, Any]] = {}
        #: Flags opened or resolved by this change, for the alerts topic.
        self.flag_changes: list[dict[str, Any]] = []

    def count(self, metric: str, ward: str, day: str, n: int = 1) -> None:
        key = f"{metric}|{ward}|{day}"  # counter_key, inlined: several calls per event
        inc = self.inc
        inc[key] = inc.get(key, 0) + n

    def first_sighting(self, event_id: str) -> bool:
        """True the first time an event id is seen in this partition; records it."""
        if event_id in self.seen or event_id in self.state.seen:
            return False
        self.seen.add(event_id)
        self.seen_order.append(event_id)
        return True

    def get(self, store: str, key: str, default: Any = None) -> Any:
        pending = self.put.get(store)
        if pending is not None:
            value = pending.get(key, _ABSENT)
            if value is not _ABSENT:
                return default if value is None else value
        target = self.state.stores.get(store)
        return default if target is None else target.get(key, default)

    def set(self, store: str, key: str, value: Any) -> None:
        self.put.setdefault(store, {})[key] = value

    def delete(self, store: str, key: str) -> None:
        self.set(store, key, None)

    def items(self, store: str) -> Iterable[tuple[str, Any]]:
        """Current items of a store including this change's writes."""
        merged = dict(self.state.stores.get(store, {}))
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
        )

    def commit(self) -> Delta:
        delta = self.to_delta()
        self.state.apply(delta)
        return delta
