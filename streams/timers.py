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

**Bounded memory with state on disk.** A heap of every pending timer grows with
the backlog (a ``SYNC_MISSING`` timer per July card: ~600,000 at 1 M soak cards,
~200 bytes each). When the ``pending`` store reads its keys in order
(:class:`OrderedKeys`: the disk store; keys are ``<kind>|<deadline, 13 digits>|<subject>``,
so key order is deadline order), the heap holds only the earliest timers, those
before its ``horizon`` (at most about ``NEAR_TIMERS``); when they are spent, the
next ones are read from the store from the horizon on, with the current change's
own uncommitted ones. Reading from the horizon also skips the deletes of timers
already due, which RocksDB keeps until a compaction.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from streams.state import Change
from streams.stores import PENDING, StoreName

#: With an ordered store: timers the heap holds before it hands the later ones back to the store.
NEAR_TIMERS = 2048
_NEVER = 1 << 62


@runtime_checkable
class OrderedKeys(Protocol):
    """A store that lists its keys in key order from a given key (``streams.store.DiskMap``)."""

    def keys_from(self, start: str) -> Iterator[str]: ...


class _Queue:
    """The pending timers of one reaction and partition that are in memory: a heap of
    ``(deadline, key)`` holding every pending timer whose deadline is before ``horizon``
    (``None``: every pending timer, the store being a dict in memory anyway)."""

    __slots__ = ("heap", "horizon")

    def __init__(self, heap: list[tuple[int, str]], horizon: int | None) -> None:
        self.heap = heap
        self.horizon = horizon

    def push(self, deadline: int, key: str) -> None:
        if self.horizon is not None and deadline >= self.horizon:
            return  # in the store (or the change), read back when the heap reaches it
        heapq.heappush(self.heap, (deadline, key))
        if self.horizon is not None and len(self.heap) > 2 * NEAR_TIMERS:
            self.heap.sort()  # a sorted list is a heap
            cut = self.heap[NEAR_TIMERS][0]
            self.heap = [entry for entry in self.heap if entry[0] < cut]
            self.horizon = cut


class Timers:
    """Pending timers of one reaction (``kind``), per partition."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._prefix = f"{kind}|"

    def _key(self, deadline: int, subject: str) -> str:
        return f"{self._prefix}{deadline:013d}|{subject}"

    def _deadline(self, key: str) -> int:
        return int(key[len(self._prefix) :].split("|", 1)[0])

    def _queue(self, change: Change) -> _Queue:
        queue: _Queue | None = change.state.indexes.get(self._prefix)
        if queue is None:
            if isinstance(change.state.stores.get(PENDING), OrderedKeys):
                queue = _Queue([], 0)  # filled from the store when first asked
            else:
                heap = [(self._deadline(key), key) for key, _ in change.items(PENDING)
                        if key.startswith(self._prefix)]
                heapq.heapify(heap)
                queue = _Queue(heap, None)
            change.state.indexes[self._prefix] = queue
        return queue

    def _refill(self, change: Change, queue: _Queue) -> None:
        """The next timers from the store, from the horizon on: about ``NEAR_TIMERS`` of them
        (all of the last deadline taken), with the change's uncommitted ones before the new horizon."""
        assert queue.horizon is not None
        store: Any = change.state.stores[PENDING]
        taken: list[tuple[int, str]] = []
        horizon = _NEVER
        for key in store.keys_from(self._key(queue.horizon, "")[:-1]):
            if not key.startswith(self._prefix):
                break
            deadline = self._deadline(key)
            if len(taken) >= NEAR_TIMERS and deadline != taken[-1][0]:
                horizon = deadline
                break
            taken.append((deadline, key))
        for key, value in (change.put.get(PENDING) or {}).items():
            if value is not None and key.startswith(self._prefix):
                deadline = self._deadline(key)
                if queue.horizon <= deadline < horizon:
                    taken.append((deadline, key))
        heapq.heapify(taken)
        queue.heap, queue.horizon = taken, horizon

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
        self._queue(change).push(deadline, key)

    def due(self, change: Change, watermark: int) -> Iterator[str]:
        """Subjects whose deadline the watermark has passed (``deadline < watermark``); each once."""
        queue = self._queue(change)
        while True:
            if not queue.heap and queue.horizon is not None and queue.horizon < min(watermark, _NEVER):
                self._refill(change, queue)
            heap = queue.heap
            if not heap or heap[0][0] >= watermark:
                return
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
