"""A harness for specifying stream behaviour without a broker: feed events, read flags.

Bytewax ships ``bytewax.testing`` for the same reason: a rule is best specified by
what it does to a stream, and a broker adds nothing to that but time. :class:`Feed`
drives the real :class:`streams.processor.Processor` (the worker's pure core, with
the default rules or the ones you give it), one partition, offsets counted per
topic, and keeps what the worker would have published::

    from streams.testing import Feed

    feed = Feed().send(card_issued, welfare_paid_73_hours_later)
    flag = feed.only("SYNC_MISSING")            # exactly one, or the test fails
    assert flag["status"] == "OPEN"
    assert feed.alerts[-1]["flag_id"] == flag["flag_id"]

Events are plain dicts as agencies publish them (``citizen_ref`` already a
pseudonym); each is encoded and read back exactly as on a topic, so a contract
breach shows up as a dead letter, as it would in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schemas.codec import EventCodec
from schemas.contracts import TOPIC_OF_EVENT
from streams.flags import Reaction, default_rules
from streams.flags.rollups import merged_rollups
from streams.processor import DeadLetter, Processor
from streams.rollup_merge import merge, partial_messages

Event = dict[str, Any]

#: The wall clock (and Kafka timestamp) a feed runs at unless told otherwise: 2024-06-01T00:00Z.
DEFAULT_NOW_MS = 1_717_200_000_000


class Feed:
    """Events into one partition of their topics, in the order given; flags and side effects out."""

    def __init__(
        self,
        sla: Mapping[str, float] | None = None,
        *,
        rules: Sequence[Reaction] | None = None,
        codec: EventCodec | None = None,
        now_ms: int = DEFAULT_NOW_MS,
        partition: int = 0,
    ) -> None:
        """``sla`` overrides SLA hours by name (``LIENTHONG_SLA_<NAME>``); ``rules`` replaces the default rules."""
        self.codec = codec or EventCodec()
        self.processor = Processor(self.codec, list(rules) if rules is not None else default_rules(sla))
        self.now_ms = now_ms
        self.partition = partition
        #: Next offset per topic.
        self.offsets: dict[str, int] = {}
        #: Every flag change the worker would publish on ``lienthong.alerts``, in order.
        self.alerts: list[Event] = []
        #: Every dead letter the worker would publish on ``lienthong.deadletter``, in order.
        self.dead_letters: list[DeadLetter] = []
        #: The merge stage's table of SYNC_MISSING roll-ups (``streams.rollup_merge``), by ward × day.
        self.merged: dict[str, bytes] = {}

    def send(self, *events: Event) -> Feed:
        """Each event as its own message on its topic, in the order given."""
        for e in events:
            self.raw(TOPIC_OF_EVENT[e["event_type"]], self.codec.encode(e))
        return self

    def backfill(self, *events: Event, order: tuple[str, ...]) -> Feed:
        """Read a backlog: each topic's events in the order given, one topic after another
        (``order`` first, then any other); a topic is idle (caught up) once read to its end."""
        queues: dict[str, list[Event]] = {}
        for e in events:
            queues.setdefault(TOPIC_OF_EVENT[e["event_type"]], []).append(e)
        for topic in [*order, *sorted(set(queues) - set(order))]:
            queue = queues.get(topic, [])
            while queue:
                e = queue.pop(0)
                idle = frozenset(t for t in TOPIC_OF_EVENT.values() if not queues.get(t))
                self.raw(topic, self.codec.encode(e), idle=idle)
        return self

    def raw(self, topic: str, value: bytes, timestamp: int | None = None, idle: frozenset[str] | None = None) -> None:
        """Any bytes as the next message of ``topic`` (Kafka timestamp ``timestamp``, default now)."""
        offset = self.offsets.get(topic, -1) + 1
        self.offsets[topic] = offset
        outcome = self.processor.process(topic, self.partition, offset, value,
                                         self.now_ms if timestamp is None else timestamp,
                                         now_ms=self.now_ms, idle=idle)
        self.alerts.extend(outcome.flag_changes)
        self.dead_letters.extend(outcome.dead_letters)
        assert outcome.delta is not None
        # the partition's roll-up partials go through the merge stage, as on lienthong.rollup-partials
        for _, partial, _ in partial_messages(outcome.delta.put.get("partials") or {}, 8):
            group, updated, announce = merge(partial, self.merged.get)
            if updated is not None:
                self.merged[group] = updated
            self.alerts.extend(announce)

    @property
    def flags(self) -> dict[str, Event]:
        """The partition's flags and the roll-ups merged from its partials, as the view shows them
        (withdrawn ones are gone)."""
        state = self.processor.state(self.partition)
        rollups = merged_rollups(state.stores["partials"].values())
        return {**state.stores["flags"], **{f["flag_id"]: f for f in rollups}}

    def of_type(self, flag_type: str) -> list[Event]:
        return [f for f in self.flags.values() if f["type"] == flag_type]

    def only(self, flag_type: str) -> Event:
        """The one flag of ``flag_type``; fails when there is none or more than one."""
        found = self.of_type(flag_type)
        assert len(found) == 1, f"expected one {flag_type}, got {found}"
        return found[0]
