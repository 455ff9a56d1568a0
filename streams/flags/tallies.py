"""Informational flags, one per (type, agency, local day, partition) with a count.

``DUPLICATE_EVENT``, ``LATE_EVENT`` and ``CONTRACT_VIOLATION`` describe an
agency's feed, not a citizen: a re-imported file can repeat thousands of events,
and one flag per event would bury the flags that need action. So each partition
keeps one tally per agency and local day: a count, and as evidence the first
``EVIDENCE_CAP`` items *by event time* (not by arrival, so a replay in another
interleaving keeps the same evidence).

Lifecycle: a tally flag is OPEN while its day is current and RESOLVED (``resolved_at``
= the end of that local day) once the partition watermark passes the end of the
day: the day's feed is closed and the count is final. A late or duplicate event of
a day already closed updates the count of the RESOLVED flag without re-opening it.
Only opening and resolving are announced on the alerts topic; the running count is
in ``GET /api/flags``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from schemas.contracts import WALL_CLOCK_EVENTS, agency_of_topic
from schemas.errors import ContractError
from streams.clock import CITY_TZ, local_day
from streams.flags.records import EVIDENCE_CAP, FLAGS, flag_id, make_flag, reconcile
from streams.reaction import BaseReaction, Event, SourcePosition, watermark_of
from streams.sla import sla_ms
from streams.state import Change
from streams.stores import META, PENDING, StoreName
from streams.timers import Timers

#: One tally per (type, agency, local day) of the partition: count and first evidence.
TALLIES = StoreName("tallies")

WHAT = {
    "DUPLICATE_EVENT": "event(s) published more than once",
    "LATE_EVENT": "event(s) arrived later than their topic's progress allows",
    "CONTRACT_VIOLATION": "message(s) refused and dead-lettered",
}


@lru_cache(maxsize=4096)
def end_of_day_ms(day: str) -> int:
    """First millisecond after the local day ``day`` (YYYY-MM-DD) in the city's zone."""
    start = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), tzinfo=CITY_TZ)
    return int(start.timestamp() * 1000)


class Tallies:
    """The shared bookkeeping of the three informational rules."""

    def __init__(self) -> None:
        self.deadlines = Timers("TALLY")

    def add(
        self, change: Change, flag_type: str, agency: str, at: int, item: str, ward: str = ""
    ) -> None:
        day = local_day(at)
        subject = f"{agency or 'UNKNOWN'}/{day}/p{change.state.partition}"
        fid = flag_id(flag_type, subject)
        tally = change.get(TALLIES, fid) or {
            "count": 0,
            "first": [],
            "day_end": end_of_day_ms(day),
        }
        first = tally["first"]
        if (len(first) < EVIDENCE_CAP or [at, item] < first[-1]) and [at, item] not in first:
            first = sorted([*first, [at, item]])[:EVIDENCE_CAP]
        tally = dict(tally, count=tally["count"] + 1, first=first)
        change.set(TALLIES, fid, tally)
        watermark = watermark_of(change)
        self.deadlines.notify_at(change, tally["day_end"], fid, watermark)
        self._reconcile(change, fid, flag_type, agency, day, subject, tally, watermark)

    def on_watermark(self, watermark: int, change: Change) -> None:
        for fid, tally in self.deadlines.due_records(change, watermark, TALLIES):
            flag = change.get(FLAGS, fid)
            if flag is None:
                continue
            _, day, _ = flag["subject"].split("/")
            self._reconcile(
                change, fid, flag["type"], flag["agency"], day, flag["subject"], tally, watermark
            )

    @staticmethod
    def _reconcile(
        change: Change,
        fid: str,
        flag_type: str,
        agency: str,
        day: str,
        subject: str,
        tally: dict[str, Any],
        watermark: int,
    ) -> None:
        closed = watermark > tally["day_end"]
        count = tally["count"]
        detail = (
            f"{count} {WHAT[flag_type]} from {agency or 'an unknown agency'} on {day} "
            f"(partition {change.state.partition}); evidence: the first {len(tally['first'])} by time"
        )
        desired = make_flag(
            flag_type,
            status="RESOLVED" if closed else "OPEN",
            agency=agency,
            ward="",
            subject=subject,
            opened_at=tally["first"][0][0],
            resolved_at=tally["day_end"] if closed else None,
            detail=detail,
            evidence=[item for _, item in tally["first"]],
        )
        reconcile(change, fid, desired, announce_updates=False)


class DuplicateEventRule(BaseReaction):
    """An event id published twice: an agency's retry logic or export is replaying."""

    stores = (TALLIES, FLAGS, PENDING)
    flag_types = ("DUPLICATE_EVENT",)

    def __init__(self, tallies: Tallies) -> None:
        self.tallies = tallies

    def on_duplicate(self, event: Event, change: Change) -> None:
        self.tallies.add(
            change, "DUPLICATE_EVENT", event["source"], event["occurred_at"], event["event_id"]
        )


class LateEventRule(BaseReaction):
    """An event far behind the progress of its own topic-partition.

    Measured against the watermark of the event's own (topic, partition), not the
    partition's: the order within one topic-partition is fixed by Kafka, so the
    answer does not depend on how topics interleave. The event still counts in
    its own day; the flag only reports that the feed delivered it late.
    """

    stores = (TALLIES, FLAGS, PENDING, META)
    flag_types = ("LATE_EVENT",)

    def __init__(self, tallies: Tallies, sla: dict[str, float]) -> None:
        self.tallies = tallies
        self.lateness = sla_ms(sla, "LATE_EVENT")

    def on_event(self, event: Event, change: Change) -> None:
        if event["event_type"] in WALL_CLOCK_EVENTS:
            return  # heartbeats carry wall-clock time, not event time
        key = f"watermark:{change.topic}"
        topic_watermark = int(change.get(META, key, 0) or 0)
        at = event["occurred_at"]
        if at < topic_watermark - self.lateness:
            self.tallies.add(change, "LATE_EVENT", event["source"], at, event["event_id"])
        elif at > topic_watermark:
            change.set(META, key, at)

    def on_beyond_horizon(self, event: Event, change: Change) -> None:
        """Far too late to be deduplicated (so not counted): still reported as late."""
        self.tallies.add(change, "LATE_EVENT", event["source"], event["occurred_at"], event["event_id"])


class ContractViolationRule(BaseReaction):
    """A message that could not be decoded or broke its contract (dead-lettered)."""

    stores = (TALLIES, FLAGS, PENDING)
    flag_types = ("CONTRACT_VIOLATION",)

    def __init__(self, tallies: Tallies) -> None:
        self.tallies = tallies

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        position = f"{where.topic}/{where.partition}/{where.offset}"
        self.tallies.add(
            change, "CONTRACT_VIOLATION", agency_of_topic(where.topic), where.timestamp, position
        )


class TallyClock(BaseReaction):
    """Closes the day's tallies when the watermark passes the end of the day."""

    stores = (TALLIES, FLAGS, PENDING)

    def __init__(self, tallies: Tallies) -> None:
        self.tallies = tallies

    def on_watermark(self, watermark: int, change: Change) -> None:
        self.tallies.on_watermark(watermark, change)
