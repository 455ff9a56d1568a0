"""AGENCY_SILENT: an agency that stopped sending events and heartbeats.

The only flag on the wall clock, on purpose: silence is about the agency's
connector being alive *now*, which event time cannot tell (a silent agency sends
no events to move it). So it cannot live in the event-time state: a
:class:`SilenceMonitor` in each worker compares every agency's ``last_seen_ms``
(the processor stamps it with the wall clock, the view merges all partitions) to
a threshold and keeps its flags in memory.

Every worker computes them, so any worker's ``GET /api/flags`` shows them, but only
the worker that owns partition 0 of ``lienthong.heartbeats`` publishes them to
``lienthong.alerts``, so a silence is announced once, not once per worker. Only
agencies seen at least once can be silent: an agency that never connected is a
deployment matter, not a failure in sharing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.topics import HEARTBEATS
from streams.clock import iso_utc
from streams.flags.records import Flag, flag_id, make_flag

#: The one topic-partition whose owner announces silences.
PUBLISHER_TOPIC, PUBLISHER_PARTITION = HEARTBEATS, 0


def owns_publisher_partition(assignment: Iterable[Any]) -> bool:
    """True for the worker whose consumer holds partition 0 of the heartbeats topic."""
    return any(
        tp.topic == PUBLISHER_TOPIC and tp.partition == PUBLISHER_PARTITION for tp in assignment
    )


class SilenceMonitor:
    """Opens a flag per agency silent longer than ``threshold_ms``; resolves it when heard again."""

    #: The one flag type it raises (wall clock, not a reaction to events).
    flag_types = ("AGENCY_SILENT",)

    #: Silence periods kept for the scorecard (the oldest are dropped first).
    PERIODS_KEPT = 1000

    def __init__(self, threshold_ms: int) -> None:
        self.threshold_ms = threshold_ms
        self._flags: dict[str, Flag] = {}
        #: ``{"agency", "start", "end"}``: last heard before the silence, heard again
        #: (``None`` while silent); in memory, like the flags, for the scorecard.
        self.periods: list[dict[str, Any]] = []

    @property
    def interval_s(self) -> float:
        """How often to check: a quarter of the threshold, between 0.5 s and 30 s."""
        return min(30.0, max(0.5, self.threshold_ms / 4000))

    def flags(self) -> list[Flag]:
        return list(self._flags.values())

    def check(self, agencies: dict[str, dict[str, Any]], now_ms: int) -> list[Flag]:
        """Flags that opened or resolved since the last check, given each agency's last sighting."""
        changes: list[Flag] = []
        for agency, info in sorted(agencies.items()):
            last_seen = int(info.get("last_seen_ms") or 0)
            if not last_seen:
                continue
            silent = now_ms - last_seen > self.threshold_ms
            current = self._flags.get(agency)
            if silent and (current is None or current["status"] != "OPEN"):
                flag = make_flag(
                    "AGENCY_SILENT",
                    status="OPEN",
                    agency=agency,
                    ward="",
                    subject=agency,
                    opened_at=last_seen + self.threshold_ms,
                    detail=f"no event or heartbeat from {agency} since {iso_utc(last_seen)} "
                    f"(threshold {self.threshold_ms / 1000:g} s)",
                )
                self.periods = [*self.periods, {"agency": agency, "start": last_seen, "end": None}]
                del self.periods[: -self.PERIODS_KEPT]
            elif not silent and current is not None and current["status"] == "OPEN":
                flag = dict(
                    current,
                    status="RESOLVED",
                    resolved_at=last_seen,
                    detail=current["detail"] + f"; heard again {iso_utc(last_seen)}",
                )
                self.periods = [
                    dict(p, end=last_seen) if p["agency"] == agency and p["end"] is None else p
                    for p in self.periods
                ]
            else:
                continue
            self._flags[agency] = flag
            changes.append(flag)
        return changes


def silent_flag_id(agency: str) -> str:
    return flag_id("AGENCY_SILENT", agency)
