"""Spurious flags in a backfill: flag changes a live run of the same history would not make.

A backfill reads each topic-partition in order, but the topics at different
speeds, so one agency's history can be read far ahead of another's. A flag
judged on the wrong clock then opens (a sync "missing" that is merely not read
yet) and is withdrawn a moment later. This module replays the benchmark's
backlog through the processor (no broker) twice:

* **live** — every event as its own message, in the order the agencies send
  them (late and repeated events included), every other topic caught up
  (nothing unread anywhere): how a city running live feeds the hub;
* **backfill** — the very messages ``lienthong bench`` publishes (batches per
  topic-partition), each topic-partition in order but the topics interleaved as
  a backfill may read them (``order``): ``topics`` reads one topic's whole
  history before the next, ``random`` picks the next topic at random. A
  topic-partition counts as caught up (idle) only once all of it is read.

A **spurious** flag change is an alert of the backfill about a flag the live run
never announced. Run::

    python -m bench.flag_churn --events 200000 [--order topics|random|both]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.workload import Message, build_events, encode_messages
from schemas.codec import EventCodec
from schemas.partitioning import partition_for
from schemas.topics import TOPIC_OF_EVENT, partition_key
from streams.flags import default_rules
from streams.flags.rollups import merged_rollups
from streams.processor import Processor
from streams.rollup_merge import merge, partial_messages

NOW_MS = 1_800_000_000_000
#: Topic read first in the ``topics`` order: the police ahead of social insurance.
TOPIC_ORDER = (
    "lienthong.identity",
    "lienthong.residence",
    "lienthong.civil-status",
    "lienthong.procedures",
    "lienthong.health",
    "lienthong.welfare",
    "lienthong.insurance",
    "lienthong.heartbeats",
)


@dataclass
class Run:
    """Flag changes (alerts) of one pass, and the flags it ended with."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def by_status(self) -> Counter[str]:
        return Counter(c["status"] for c in self.changes)


@dataclass
class Churn:
    order: str
    live: Run
    backfill: Run

    @property
    def spurious(self) -> list[dict[str, Any]]:
        """Backfill alerts about flags the live run never announced."""
        announced = {c["flag_id"] for c in self.live.changes}
        return [c for c in self.backfill.changes if c["flag_id"] not in announced]

    @property
    def same_final_flags(self) -> bool:
        return self.live.final == self.backfill.final


def _process(messages: Iterable[tuple[Message, frozenset[str] | None]], codec: EventCodec) -> Run:
    processor = Processor(codec, default_rules())
    offsets: dict[tuple[str, int], int] = {}
    run = Run()
    merged: dict[str, bytes] = {}
    for m, idle in messages:
        offset = offsets.get((m.topic, m.partition), 0)
        offsets[(m.topic, m.partition)] = offset + 1
        outcome = processor.process(m.topic, m.partition, offset, m.value, NOW_MS, NOW_MS, idle=idle)
        run.changes.extend(outcome.flag_changes)
        # SYNC_MISSING roll-ups: announced by the merge stage from the partitions' partials
        assert outcome.delta is not None
        for _, value, _ in partial_messages(outcome.delta.put.get("partials") or {}, 1):
            group, updated, announce = merge(value, merged.get)
            if updated is not None:
                merged[group] = updated
            run.changes.extend(announce)
    for state in processor.states.values():
        run.final.update(state.stores["flags"])
    partials = [p for state in processor.states.values() for p in state.stores["partials"].values()]
    run.final.update({f["flag_id"]: f for f in merged_rollups(partials)})
    return run


def live_run(events: list[dict[str, Any]], partitions: int, codec: EventCodec | None = None) -> Run:
    """Each event on its own, in the order sent, with every topic caught up."""
    codec = codec or EventCodec()
    messages = (
        (Message(TOPIC_OF_EVENT[e["event_type"]], partition_for(partition_key(e), partitions),
                 codec.encode(e, check=False), 1), None)
        for e in events
    )
    return _process(messages, codec)


def backfill_order(messages: list[Message], order: str, seed: int = 1) -> list[tuple[Message, frozenset[str]]]:
    """The messages as a backfill may read them, each with the topics already read to their end."""
    queues: dict[int, dict[str, list[Message]]] = defaultdict(lambda: defaultdict(list))
    for m in messages:
        queues[m.partition][m.topic].append(m)
    rng = random.Random(seed)
    out: list[tuple[Message, frozenset[str]]] = []
    for partition in sorted(queues):
        topics = queues[partition]
        all_topics = set(TOPIC_ORDER)
        while any(topics.values()):
            waiting = [t for t in TOPIC_ORDER if topics.get(t)]
            topic = waiting[0] if order == "topics" else rng.choice(waiting)
            m = topics[topic].pop(0)
            # caught up: every topic with nothing left to read in this partition
            out.append((m, frozenset(t for t in all_topics if not topics.get(t))))
    return out


def measure(events: list[dict[str, Any]], order: str, batch_size: int = 500, partitions: int = 8,
            seed: int = 1, live: Run | None = None) -> Churn:
    codec = EventCodec()
    live = live or live_run(events, partitions, codec)
    messages = encode_messages(events, batch_size, partitions, codec)
    backfill = _process(backfill_order(messages, order, seed), codec)
    return Churn(order, live, backfill)


def main(argv: list[str] | None = None) -> list[Churn]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=6, help="the simulated city's seed (bench default 6)")
    parser.add_argument("--order", choices=("topics", "random", "both"), default="both")
    args = parser.parse_args(argv)
    events = build_events(args.events, args.seed)
    live = live_run(events, args.partitions)
    print(f"{len(events):,} events; live run: {len(live.changes):,} flag changes {dict(live.by_status)}, "
          f"{len(live.final):,} flags at the end")
    results = []
    for order in (("topics", "random") if args.order == "both" else (args.order,)):
        churn = measure(events, order, args.batch_size, args.partitions, live=live)
        spurious = churn.spurious
        print(f"backfill ({order}): {len(churn.backfill.changes):,} flag changes "
              f"{dict(churn.backfill.by_status)}; spurious {len(spurious):,} "
              f"({dict(Counter(c['type'] for c in spurious))}); same final flags as live: {churn.same_final_flags}")
        results.append(churn)
    return results


if __name__ == "__main__":
    main()
