"""Event-id dedupe: exact within a stated horizon of event time, bounded memory, and what lies beyond.

Seen ids are kept per source topic and local day of event time; a day is
forgotten (by a fenced delta) once the topic's newest event time is more than
the horizon past it. An event older than the horizon cannot be told from a
re-send, so it is dead-lettered with the reason and tallied as LATE_EVENT,
never counted (docs/exactly-once.md §3a).
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.codec import EventCodec
from schemas.topics import IDENTITY
from streams.flags import default_rules
from streams.processor import Processor
from streams.state import LEGACY_BUCKET, Delta, PartitionState
from tests.unit.test_flags import T0, D, card

CODEC = EventCodec()
HORIZON_DAYS = 10


class Topic:
    """One partition of the identity topic read by one processor, one event per message."""

    def __init__(self) -> None:
        self.processor = Processor(CODEC, default_rules(), dedupe_horizon_days=HORIZON_DAYS)
        self.offset = 0
        self.deltas: list[Delta] = []
        self.dead: list[Any] = []

    def send(self, *events: dict[str, Any]) -> Topic:
        for e in events:
            outcome = self.processor.process(IDENTITY, 0, self.offset, CODEC.encode(e), T0, now_ms=T0)
            assert outcome.delta is not None
            self.deltas.append(outcome.delta)
            self.dead.extend(outcome.dead_letters)
            self.offset += 1
        return self

    @property
    def state(self) -> PartitionState:
        return self.processor.state(0)

    def count(self, metric: str) -> int:
        return sum(v for k, v in self.state.counters.items() if k.startswith(metric + "|"))


def test_a_resend_just_within_the_horizon_counts_once_as_a_duplicate():
    first = card(T0, 1)
    topic = Topic().send(first, card(T0 + (HORIZON_DAYS * D) - 1, 2), dict(first))
    assert topic.count("id_cards_issued") == 2
    assert topic.count("events_duplicate") == 1


def test_days_that_leave_the_horizon_are_forgotten_so_memory_stays_bounded():
    topic = Topic().send(*(card(T0 + day * D, day) for day in range(60)))
    assert topic.count("id_cards_issued") == 60
    assert len(topic.state.seen) <= HORIZON_DAYS + 2  # buckets of the last days only, not of sixty
    assert sum(len(ids) for ids in topic.state.seen.values()) <= HORIZON_DAYS + 2


def test_an_event_older_than_the_horizon_is_dead_lettered_with_the_reason_and_not_counted():
    old = card(T0, 1)
    topic = Topic().send(old, card(T0 + 40 * D, 2), dict(old))  # the re-send of a forgotten day
    assert topic.count("id_cards_issued") == 2  # the first sighting only: never twice
    [dead] = topic.dead
    assert dead.error.field == "occurred_at" and "dedupe horizon" in str(dead.error)
    assert CODEC.decode(dead.value)["event_id"] == old["event_id"]
    assert topic.count("events_dead_lettered") == 1
    assert topic.count("events_beyond_horizon") == 1
    late = [f for f in topic.state.stores["flags"].values() if f["type"] == "LATE_EVENT"]
    assert len(late) == 1 and old["event_id"] in late[0]["evidence"]


def test_forgetting_a_day_is_part_of_the_fenced_delta_so_a_restore_forgets_it_too():
    topic = Topic().send(*(card(T0 + day * D, day) for day in range(30)))
    restored = PartitionState.fold(0, [Delta.decode(d.encode()) for d in topic.deltas])
    assert restored.seen == topic.state.seen
    assert any(d.expired for d in topic.deltas)


def test_ids_from_a_changelog_written_before_buckets_still_dedupe():
    first = card(T0, 1)
    topic = Topic().send(first)
    legacy = orjson.loads(topic.deltas[0].encode())
    legacy["n"] = [first["event_id"]]  # the old format: a flat list
    state = PartitionState.fold(0, [Delta.decode(orjson.dumps(legacy))])
    assert state.seen == {LEGACY_BUCKET: {first["event_id"]}}
    processor = Processor(CODEC, default_rules(), dedupe_horizon_days=HORIZON_DAYS)
    processor.adopt(state)
    processor.process(IDENTITY, 0, 1, CODEC.encode(dict(first)), T0, now_ms=T0)
    assert sum(v for k, v in processor.state(0).counters.items() if k.startswith("events_duplicate|")) == 1
