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

from schemas.contracts import SOURCE_OF_EVENT, TOPIC_OF_EVENT, WALL_CLOCK_EVENTS
from schemas.errors import ContractError
from streams.clock import CITY_TZ, local_day
from streams.flags.deadlines import Deadlines
from streams.flags.records import EVIDENCE_CAP, flag_id, make_flag, reconcile
from streams.flags.rules import BaseRule, Event, SourcePosition, watermark_of
from streams.sla import sla_ms
from streams.state import Change

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


def agency_of_topic(topic: str) -> str:
    """The one agency that publishes to a topic, or "" when several may (heartbeats)."""
    sources = {SOURCE_OF_EVENT[t] for t, tp in TOPIC_OF_EVENT.items() if tp == topic}
    only = next(iter(sources)) if len(sources) == 1 else None
    return only or ""


class Tallies:
    """The shared bookkeeping of the three informational rules."""

    def __init__(self) -> None:
        self.deadlines = Deadlines("TALLY")

    def add(
        self, change: Change, flag_type: str, agency: str, at: int, item: str, ward: str = ""
    ) -> None:
        day = local_day(at)
        subject = f"{agency or 'UNKNOWN'}/{day}/p{change.state.partition}"
        fid = flag_id(flag_type, subject)
        tally = change.get("tallies", fid) or {
            "count": 0,
            "first": [],
            "day_end": end_of_day_ms(day),
        }
        first = tally["first"]
        if (len(first) < EVIDENCE_CAP or [at, item] < first[-1]) and [at, item] not in first:
            first = sorted([*first, [at, item]])[:EVIDENCE_CAP]
        tally = dict(tally, count=tally["count"] + 1, first=first)
        change.set("tallies", fid, tally)
        watermark = watermark_of(change)
        self.deadlines.add(change, tally["day_end"], fid, watermark)
        self._reconcile(change, fid, flag_type, agency, day, subject, tally, watermark)

    def on_watermark(self, watermark: int, change: Change) -> None:
        for fid, tally in self.deadlines.due_records(change, watermark, "tallies"):
            flag = change.get("flags", fid)
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


class DuplicateEventRule(BaseRule):
    """An event id published twice: an agency's retry logic or export is replaying."""

    def __init__(self, tallies: Tallies) -> None:
        self.tallies = tallies

    def on_duplicate(self, event: Event, change: Change) -> None:
        self.tallies.add(
            change, "DUPLICATE_EVENT", event["source"], event["occurred_at"], event["event_id"]
        )


class LateEventRule(BaseRule):
    """An event far behind the progress of its own topic-partition.

    Measured against the watermark of the event's own (topic, partition), not the
    partition's: the order within one topic-partition is fixed by Kafka, so the
    answer does not depend on how topics interleave. The event still counts in
    its own day; the flag only reports that the feed delivered it late.
    """

    def __init__(self, tallies: Tallies, sla: dict[str, float]) -> None:
        self.tallies = tallies
        self.lateness = sla_ms(sla, "LATE_EVENT")

    def on_event(self, event: Event, change: Change) -> None:
        if event["event_type"] in WALL_CLOCK_EVENTS:
            return  # heartbeats carry wall-clock time, not event time
        key = f"watermark:{change.topic}"
        topic_watermark = int(change.get("meta", key, 0) or 0)
        at = event["occurred_at"]
        if at < topic_watermark - self.lateness:
            self.tallies.add(change, "LATE_EVENT", event["source"], at, event["event_id"])
        elif at > topic_watermark:
            change.set("meta", key, at)

    def on_beyond_horizon(self, event: Event, change: Change) -> None:
        """Far too late to be deduplicated (so not counted): still reported as late."""
        self.tallies.add(change, "LATE_EVENT", event["source"], event["occurred_at"], event["event_id"])


class ContractViolationRule(BaseRule):
    """A message that could not be decoded or broke its contract (dead-lettered)."""

    def __init__(self, tallies: Tallies) -> None:
        self.tallies = tallies

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        position = f"{where.topic}/{where.partition}/{where.offset}"
        self.tallies.add(
            change, "CONTRACT_VIOLATION", agency_of_topic(where.topic), where.timestamp, position
        )


class TallyClock(BaseRule):
    """Closes the day's tallies when the watermark passes the end of the day."""

    def __init__(self, tallies: Tallies) -> None:
        self.tallies = tallies

    def on_watermark(self, watermark: int, change: Change) -> None:
        self.tallies.on_watermark(watermark, change)
