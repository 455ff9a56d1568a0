"""Event time per source: one clock per agency feed (topic) in each partition.

A flag that waits for data from agency B (a sync from social insurance, a
completion from the portal) must be judged on **B's** clock: the newest event
time read from B's feed. With one clock for the whole partition, a backfill that
reads the police history ahead of social insurance's would pass every
``SYNC_MISSING`` deadline before the syncs are even read, and the flags would
open and be withdrawn moments later. Each topic-partition is read in order, so
the clock of the topic that carries the awaited data says how far that data is
known.

**Idle sources.** A feed that is truly silent (an agency that does not send at
all yet) would hold its clock, and every flag waiting for it, forever. So, as
Kafka Streams (``max.task.idle.ms``) and Flink (``withIdleness``) align input
times, a topic-partition that is *idle* — nothing unread in it and nothing
received from it for a while (the worker decides; see
``streams.app.Hub.idle_topics``) — follows the others: its clock is raised to
the slowest clock among the feeds that are still active in the partition, or,
when every feed is idle (a live city: nothing unread anywhere), to the leading
clock of the partition (never lowered). A feed with unread data is never idle,
so a backfill waits for it.

Clocks are stored in the partition's ``meta`` store (``clock:<topic>``), so they
are fenced with the rest of the state and a restore gets them back.
"""

from __future__ import annotations

from collections.abc import Collection

from schemas.topics import EVENT_TOPICS, HEARTBEATS
from streams.state import Change
from streams.stores import META

#: Topics that carry agency events (heartbeats carry wall-clock time: no clock).
CLOCKED_TOPICS: tuple[str, ...] = tuple(t for t in EVENT_TOPICS if t != HEARTBEATS)
CLOCK_KEY = "clock:"


def clock_of(change: Change, topic: str) -> int:
    """The event-time clock of one feed in this partition (0 before anything is known)."""
    return int(change.get(META, CLOCK_KEY + topic, 0) or 0)


def advance_clocks(
    change: Change, topic: str, newest: int, idle: Collection[str] | None
) -> list[tuple[str, int]]:
    """Move the clocks after a message from ``topic`` whose newest event time is ``newest``.

    ``idle``: the topics of this partition known to be caught up and quiet
    (``topic`` included when this message was its last unread one); ``None``
    means every topic (live: nothing unread anywhere). Idle feeds follow the
    slowest active feed; when every feed is idle, all follow the leading one.
    Returns the clocks that moved, as (topic, new clock).
    """
    moved: list[tuple[str, int]] = []
    if topic in CLOCKED_TOPICS and newest > clock_of(change, topic):
        change.set(META, CLOCK_KEY + topic, newest)
        moved.append((topic, newest))
    clocks = {t: clock_of(change, t) for t in CLOCKED_TOPICS}
    if idle is None:
        active: list[str] = []
    else:
        active = [t for t in CLOCKED_TOPICS if t not in idle]
    floor = min(clocks[t] for t in active) if active else max(clocks.values())
    for other in CLOCKED_TOPICS:
        if other not in active and floor > clocks[other]:
            change.set(META, CLOCK_KEY + other, floor)
            moved.append((other, floor))
    return moved
