"""The city-wide view any worker can serve: its own partitions, live, plus every
other partition from the latest snapshot on ``lienthong.aggregates``.

So any worker answers for any ward (a replicated view, eventually consistent
within one snapshot interval for partitions it does not own, exact and live for
the ones it does).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from schemas.vocabulary import WITHDRAWN
from streams.flags.rollups import (
    ROLLED_FLAGS,
    ROLLUP_GROUPS,
    ROLLUP_PARTIALS,
    is_partition_rollup,
    merged_rollups,
)
from streams.kpis import compute_kpis, filter_counters
from streams.liveness import agency_liveness
from streams.processor import Processor
from streams.scorecard import build_scorecard
from streams.state import PartitionState


def snapshot_of(state: PartitionState, worker: str) -> dict[str, Any]:
    return {
        "partition": state.partition,
        "worker": worker,
        "seq": state.seq,
        "version": state.version,
        "as_of": int(time.time() * 1000),
        "applied": state.applied,
        "watermark": state.watermark,
        "counters": dict(state.counters),
        "flags": list(state.stores["flags"].values()),
        "agencies": agency_liveness(state),
        # Not the citizen flags behind SYNC_MISSING roll-ups (one per ID card in an onboarding:
        # they made a snapshot grow with the history); the scorecard counts them as counters and
        # /api/flags/subjects lists them from the partitions a worker owns (``rolled_subjects``).
        # this partition's shares of SYNC_MISSING roll-ups, merged into one flag per ward × day
        "partials": list(state.stores["partials"].values()),
    }


#: See ``CityView._next_refresh_at``; a merge under REFRESH_FREE_S seconds is never held back.
REFRESH_COST_FACTOR = 20.0
REFRESH_FREE_S = 0.05


class OwnedCounters:
    """The counters of the partitions a worker owns, summed as changes are committed.

    A processor's listener (``Processor.listeners``): a committed change adds its
    increments, an adopted partition its counters, a dropped one takes them away.
    So the city's counters are fresh on every read at the cost of each change,
    instead of a merge of every partition's counters (one per metric × ward × day
    × partition: millions in a year) that a busy worker may only redo rarely.
    """

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()

    def adopted(self, state: PartitionState) -> None:
        self.total.update(state.counters)

    def dropped(self, state: PartitionState) -> None:
        self.total.subtract(state.counters)

    def applied(self, partition: int, increments: Mapping[str, int]) -> None:
        self.total.update(increments)


class CityView:
    def __init__(self) -> None:
        self.local: dict[int, PartitionState] = {}
        #: The owned partitions' counters kept by the processor's commits (``track``); None: merged on refresh.
        self.owned: OwnedCounters | None = None
        self.remote: dict[int, dict[str, Any]] = {}
        self._cache_key: tuple[Any, ...] | None = None
        self._counters: Counter[str] = Counter()
        self._flags: list[dict[str, Any]] = []
        self._agencies: dict[str, dict[str, Any]] = {}
        self._agencies_key: tuple[Any, ...] | None = None
        self._scorecard: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self._scorecard_key: tuple[Any, ...] | None = None
        #: A merge that cost T seconds is redone at the earliest REFRESH_COST_FACTOR × T later
        #: (monotonic time), so polling the API in a backfill cannot take the worker's time:
        #: with state on disk the merge reads every flag of every owned partition.
        self._next_refresh_at = 0.0
        #: Flags kept outside partition state (AGENCY_SILENT, wall clock): callables
        #: returning the current ones, merged into ``flags`` on every read.
        self.live_flags: list[Callable[[], list[dict[str, Any]]]] = []

    def track(self, processor: Processor) -> None:
        """Show ``processor``'s partitions live, its counters summed as it commits (``OwnedCounters``)."""
        self.local = processor.states
        self.owned = OwnedCounters()
        for state in processor.states.values():
            self.owned.adopted(state)
        processor.listeners.append(self.owned)

    def accept_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Keep the newest snapshot per partition (by sequence: owners never go back)."""
        partition = int(snapshot["partition"])
        current = self.remote.get(partition)
        if current is None or snapshot["seq"] >= current["seq"]:
            self.remote[partition] = snapshot

    def _sources(self) -> list[tuple[int, Any]]:
        sources: list[tuple[int, Any]] = []
        for partition in sorted(set(self.local) | set(self.remote)):
            state = self.local.get(partition)
            remote = self.remote.get(partition)
            if state is not None:  # owned here: live and authoritative
                sources.append((partition, state))
            elif remote is not None:
                sources.append((partition, remote))
        return sources

    def _version(self) -> tuple[list[tuple[int, Any]], tuple[Any, ...]]:
        sources = self._sources()
        key = tuple(
            (p, id(s), s.version if isinstance(s, PartitionState) else s["seq"]) for p, s in sources
        )
        return sources, key

    def _refresh(self) -> None:
        """Recompute the merged counters and flags when any partition moved on."""
        sources, key = self._version()
        if key == self._cache_key:
            return
        started = time.monotonic()
        if self._cache_key is not None and started < self._next_refresh_at:
            return  # moved on, but the last merge was costly: this one waits its turn
        counters: Counter[str] = Counter()
        flags: list[dict[str, Any]] = []
        partials: list[dict[str, Any]] = []
        for _, source in sources:
            if isinstance(source, PartitionState):
                if self.owned is None:
                    counters.update(source.counters)
                flags.extend(source.stores["flags"].values())
                partials.extend(source.stores["partials"].values())
            else:
                counters.update(source["counters"])
                flags.extend(source["flags"])
                partials.extend(source.get("partials", []))
        # one SYNC_MISSING roll-up per ward × day from every partition's partial (streams.flags.rollups)
        flags = [f for f in flags if not is_partition_rollup(f)] + merged_rollups(partials)
        self._counters, self._flags, self._cache_key = counters, flags, key
        cost = time.monotonic() - started
        self._next_refresh_at = started + REFRESH_COST_FACTOR * cost if cost > REFRESH_FREE_S else 0.0

    @property
    def counters(self) -> Counter[str]:
        """The city's counters: owned partitions live, the others from their latest snapshot."""
        self._refresh()
        if self.owned is None:
            return self._counters
        if not self._counters:
            return self.owned.total
        merged = Counter(self.owned.total)
        merged.update(self._counters)
        return merged

    @property
    def flags(self) -> list[dict[str, Any]]:
        self._refresh()
        if not self.live_flags:
            return self._flags
        return self._flags + [flag for source in self.live_flags for flag in source()]

    @property
    def agencies(self) -> dict[str, dict[str, Any]]:
        """Latest liveness per agency; computed on its own, since the silence check
        reads it every few seconds and merging every counter for it would cost
        O(counters) per check during a backfill."""
        sources, key = self._version()
        if key == self._agencies_key:
            return self._agencies
        agencies: dict[str, dict[str, Any]] = {}
        for _, source in sources:
            if isinstance(source, PartitionState):
                seen = agency_liveness(source)
            else:
                seen = source.get("agencies", {})
            for agency, info in seen.items():
                if agency not in agencies or info["last_seen_ms"] > agencies[agency]["last_seen_ms"]:
                    agencies[agency] = info
        self._agencies, self._agencies_key = agencies, key
        return agencies

    def scorecard(
        self, silences: list[dict[str, Any]] | None = None, now_ms: int = 0
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Per agency × month, and per agency × ward × month (``streams.scorecard``).

        Recomputed when a partition moved on or a silence began or ended (and once
        a minute while one lasts); the counters are summed over every partition, so
        the delay histograms of all partitions merge before percentiles are read.
        """
        silences = silences or []
        flags = self.flags
        still_silent = any(p["end"] is None for p in silences)
        key = (
            self._cache_key,
            tuple((p["agency"], p["start"], p["end"]) for p in silences),
            tuple(sorted((f["flag_id"], f["status"]) for f in flags if f["type"] == "AGENCY_SILENT")),
            now_ms // 60_000 if still_silent else 0,
        )
        if key != self._scorecard_key:
            self._scorecard = build_scorecard(self.counters.items(), flags, silences, now_ms)
            self._scorecard_key = key
        return self._scorecard

    def rolled_subjects(self, key: str) -> tuple[list[dict[str, Any]], int, list[int]]:
        """The citizen flags behind the roll-up of group ``key`` (``ward|day``).

        (subjects, count, partitions elsewhere): the flags of the partitions owned
        here, read through the group's members (never the whole store); the number
        behind the roll-up in every partition (from the partials); and the partitions
        whose share lives on other workers: snapshots carry no citizen flags (one per
        ID card in an onboarding), so their owners list them.
        """
        ward, day = key.split("|")
        subjects: list[dict[str, Any]] = []
        count, elsewhere = 0, []
        for partition, source in self._sources():
            if isinstance(source, PartitionState):
                # partials and groups are keyed by group: two lookups, not a read of every one
                partials = [p for p in [source.stores.get(ROLLUP_PARTIALS, {}).get(key)] if p is not None]
                group = source.stores.get(ROLLUP_GROUPS, {}).get(key)
                rolled = source.stores.get(ROLLED_FLAGS, {})
                for fid in (group or {}).get("refs", []):
                    member = rolled.get(fid)
                    if member is not None:
                        subjects.append(member["flag"])
            else:
                partials = [p for p in source.get("partials", []) if p["ward"] == ward and p["day"] == day]
            for partial in partials:
                if partial["status"] != WITHDRAWN:
                    count += int(partial["count"])
                    if not isinstance(source, PartitionState) and partial["count"]:
                        elsewhere.append(partition)
        return sorted(subjects, key=lambda f: (f["opened_at"], f["subject"])), count, elsewhere

    def open_flags(self, ward: str | None = None, day: str | None = None) -> list[dict[str, Any]]:
        from streams.clock import local_day

        return [
            f
            for f in self.flags
            if f["status"] == "OPEN"
            and (ward is None or f["ward_code"] == ward)
            and (day is None or local_day(f["opened_at"]) == day)
        ]

    def kpis(self, ward: str | None = None, day: str | None = None) -> dict[str, Any]:
        metrics = filter_counters(self.counters.items(), ward, day)
        return compute_kpis(metrics, len(self.open_flags(ward, day)))

    @property
    def partitions_known(self) -> int:
        return len(set(self.local) | set(self.remote))
