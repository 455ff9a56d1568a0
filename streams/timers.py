"""Event-time timers of reactions: which subjects to re-check when a clock passes a time.

The timers of the reaction protocol (``streams.reaction``; Bytewax's
``StatefulLogic.notify_at`` is the model): a reaction asks to be called back about
a subject at an event time (:meth:`Timers.notify_at`) and, when its clock moves
(``on_watermark`` / ``on_clock``), takes the subjects now due (:meth:`Timers.due`).
A timer is a key in the partition's ``pending`` store, so it is fenced,
replayed and restored with the rest of the state. Scanning that store on every
watermark move would cost O(pending) per message, so each rule keeps an
in-memory heap per partition state (in ``PartitionState.indexes``), rebuilt from
the store the first time a (restored) state is seen. Entries are checked against the store when popped, so
a heap entry whose write was never committed is harmless.

**Bounded work per message.** A watermark jump can make a whole backlog due at
once (250,000 July ID cards, then the first August card passes every July
``SYNC_MISSING`` deadline). Each :class:`~streams.state.Change` carries a budget
of due deadlines it may reconcile (``LIENTHONG_DEADLINE_STEP``); :meth:`Timers.due`
stops when it is spent and leaves the rest in the ``pending`` store, and the
processor goes on with them on the partition's following messages
(``Change.deadlines_left``). Each step is one message's delta, so it is fenced
and atomic like any other; docs/exactly-once.md §2a.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from streams.state import Change
from streams.stores import PENDING, StoreName


class Timers:
    """Pending timers of one reaction (``kind``), per partition."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._prefix = f"{kind}|"

    def _key(self, deadline: int, subject: str) -> str:
        return f"{self._prefix}{deadline:013d}|{subject}"

    def _heap(self, change: Change) -> list[tuple[int, str]]:
        heap: list[tuple[int, str]] | None = change.state.indexes.get(self._prefix)
        if heap is None:
            heap = []
            for key, _ in change.items(PENDING):
                if key.startswith(self._prefix):
                    deadline = int(key[len(self._prefix) :].split("|", 1)[0])
                    heap.append((deadline, key))
            heapq.heapify(heap)
            change.state.indexes[self._prefix] = heap
        return heap

    def notify_at(self, change: Change, deadline: int, subject: str, watermark: int) -> None:
        """Re-check ``subject`` once the watermark passes ``deadline``.

        Nothing to wait for when ``watermark`` has already passed it: the caller
        reconciles the subject against that watermark right away.
        """
        if deadline < watermark:
            return
        key = self._key(deadline, subject)
        if change.get(PENDING, key) is not None:
            return
        change.set(PENDING, key, 1)
        heapq.heappush(self._heap(change), (deadline, key))

    def due(self, change: Change, watermark: int) -> Iterator[str]:
        """Subjects whose deadline the watermark has passed (``deadline < watermark``); each once."""
        heap = self._heap(change)
        while heap and heap[0][0] < watermark:
            if change.deadline_budget <= 0:
                change.deadlines_left = True  # the following messages go on from here
                return
            _, key = heapq.heappop(heap)
            if change.get(PENDING, key) is None:
                continue
            change.delete(PENDING, key)
            change.deadline_budget -= 1
            yield key.split("|", 2)[2]

    def due_records(self, change: Change, watermark: int, store: StoreName) -> list[tuple[str, Any]]:
        """Due subjects with their record in ``store``; a subject whose record is gone is skipped."""
        due = []
        for subject in self.due(change, watermark):
            record = change.get(store, subject)
            if record is not None:
                due.append((subject, record))
        return due
