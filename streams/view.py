"""The city-wide view any worker can serve: its own partitions, live, plus every
other partition from the latest snapshot on ``lienthong.aggregates``.

So any worker answers for any ward (a replicated view, eventually consistent
within one snapshot interval for partitions it does not own, exact and live for
the ones it does).
"""

from __future__ import annotations

import heapq
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

import orjson

from schemas.vocabulary import WITHDRAWN
from streams.city_counters import CityCounters
from streams.clock import local_day
from streams.flags.records import FLAG_COUNT_PREFIX, FLAGS, Flag, parse_flag_count_metric
from streams.flags.rollups import (
    ROLLED_FLAGS,
    ROLLUP_GROUPS,
    ROLLUP_PARTIALS,
    Partial,
    is_partition_rollup,
    merge_partials,
    parse_rollup_subject,
)
from streams.kpis import compute_kpis, filter_counters
from streams.liveness import agency_liveness
from streams.processor import Processor
from streams.rollup_merge import group_of
from streams.scorecard import build_scorecard
from streams.state import Delta, PartitionState, split_counter_key
from streams.store import DiskMap, DiskPartitionState


def snapshot_of(state: PartitionState, worker: str) -> dict[str, Any]:
    """What other workers' views need of a partition: its counters (events, and its flags
    counted by status, type, agency, ward and day), its roll-up partials and agency liveness.

    Not its flags: they grow with the history (a flag per citizen in an onboarding), and the
    counters already carry every figure derived from them; ``/api/flags`` lists the flags of
    the partitions a worker owns and names the others (``partitions_elsewhere``).
    """
    return dict(
        _snapshot_head(state, worker),
        counters=dict(state.counters.items()),
        # this partition's shares of SYNC_MISSING roll-ups, merged into one flag per ward × day
        partials=list(state.stores.get(ROLLUP_PARTIALS, {}).values()),
    )


#: Counters (or partials) per piece of a streamed snapshot (``snapshot_pieces``).
SNAPSHOT_PIECE_ITEMS = 4096


def snapshot_pieces(state: PartitionState, worker: str) -> Iterator[bytes]:
    """:func:`snapshot_of` as JSON, encoded a piece at a time as counters and partials are read.

    A partition on disk holds hundreds of thousands of counters late in a backfill:
    built whole, its snapshot (the dict, its JSON, and the parts of the JSON) was a
    quarter of the worker's peak memory (memray, issue 12). Streamed through
    ``parts.split_stream``, a snapshot costs a record's worth of memory. Counters and
    partials are read from disk as the pieces are taken (a partition in memory is
    copied first: its dicts change while the parts are sent).
    """
    counters: Iterable[tuple[str, int]] = state.counters.items()
    partials: Iterable[Partial] = state.stores.get(ROLLUP_PARTIALS, {}).values()
    if isinstance(state.counters, dict):
        counters, partials = list(counters), list(partials)
    yield orjson.dumps(_snapshot_head(state, worker))[:-1] + b',"counters":{'
    yield from _json_items(counters, lambda chunk: orjson.dumps(dict(chunk))[1:-1])
    yield b'},"partials":['
    yield from _json_items(partials, lambda chunk: orjson.dumps(chunk)[1:-1])
    yield b"]}"


def _json_items(items: Iterable[Any], encode: Callable[[list[Any]], bytes]) -> Iterator[bytes]:
    """The members of a JSON object or array, ``SNAPSHOT_PIECE_ITEMS`` at a time, comma-separated."""
    source = iter(items)
    separator = b""
    while chunk := list(islice(source, SNAPSHOT_PIECE_ITEMS)):
        yield separator + encode(chunk)
        separator = b","


def _snapshot_head(state: PartitionState, worker: str) -> dict[str, Any]:
    return {
        "partition": state.partition,
        "worker": worker,
        "seq": state.seq,
        "version": state.version,
        "as_of": int(time.time() * 1000),
        "applied": state.applied,
        "watermark": state.watermark,
        "agencies": agency_liveness(state),
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
        self.total = CityCounters()

    def adopted(self, state: PartitionState) -> None:
        if isinstance(state, DiskPartitionState) and state.counter_totals is not None:
            self.total.add_all(state.counter_totals)
            state.counter_totals = None  # once: it does not follow the state's changes
        else:
            self.total.update(state.counters.items())

    def dropped(self, state: PartitionState) -> None:
        self.total.subtract(state.counters.items())

    def applied(self, partition: int, delta: Delta) -> None:
        self.total.update(delta.inc)


class RollupIndex:
    """Where each SYNC_MISSING roll-up stands, from every partition's latest partial, kept small.

    Per group (``ward|day``), one signed number per partition: the partial's first
    deadline, negative once resolved, 0 when it has none (withdrawn, or never). The
    merged flag is open while any is positive, and opened at the first deadline of
    all (``merge_partials``), so the open roll-ups per ward and local day are kept
    as partials change, without the partials themselves (their evidence and counts
    stay in the partitions' stores and snapshots, read when a page lists them).
    """

    def __init__(self) -> None:
        self.groups: dict[str, array[int]] = {}
        #: Open roll-ups by (ward, local day of opened_at).
        self.open: Counter[tuple[str, str]] = Counter()
        #: Bumped whenever ``open`` changes (caches of what is derived from it).
        self.version = 0

    def _open_key(self, group: str) -> tuple[str, str] | None:
        firsts = self.groups.get(group)
        if firsts is None or not any(first > 0 for first in firsts):
            return None
        opened_at = min(abs(first) for first in firsts if first)
        return group.split("|", 1)[0], local_day(opened_at)

    def _set(self, group: str, partition: int, value: int) -> None:
        before = self._open_key(group)
        firsts = self.groups.get(group)
        if firsts is None:
            if not value:
                return
            firsts = self.groups[group] = array("q")
        if len(firsts) <= partition:
            firsts.extend([0] * (partition + 1 - len(firsts)))
        firsts[partition] = value
        if not any(firsts):
            del self.groups[group]
        after = self._open_key(group)
        if before != after:
            self.version += 1
            if before is not None:
                self.open[before] -= 1
                if not self.open[before]:
                    del self.open[before]
            if after is not None:
                self.open[after] += 1

    def put(self, partition: int, group: str, partial: Partial | None) -> None:
        """The latest partial of ``partition`` for ``group`` (None: it has none)."""
        if partial is None or partial["status"] == WITHDRAWN or int(partial["count"]) <= 0:
            self._set(group, partition, 0)
        else:
            first = int(partial["opened_at"])
            self._set(group, partition, first if partial["status"] == "OPEN" else -first)

    def forget(self, partition: int, groups: Iterable[str]) -> None:
        for group in groups:
            self._set(group, partition, 0)

    def open_rollups(self) -> Iterator[tuple[str, str, int]]:
        """(ward, local day of opened_at, open roll-ups)."""
        for (ward, day), n in self.open.items():
            yield ward, day, n


def _partials_by_group(source: PartitionState | Mapping[str, Any]) -> Iterator[tuple[str, Partial]]:
    """A source's partials in group order (a disk store yields them in key order already)."""
    if isinstance(source, PartitionState):
        store = source.stores.get(ROLLUP_PARTIALS, {})
        items = store.items()
        return iter(items) if isinstance(store, DiskMap) else iter(sorted(items, key=itemgetter(0)))
    return iter(sorted(((group_of(p), p) for p in source.get("partials", [])), key=itemgetter(0)))


class CityView:
    def __init__(self) -> None:
        self.local: dict[int, PartitionState] = {}
        #: The owned partitions' counters kept by the processor's commits (``track``); None: merged on refresh.
        self.owned: OwnedCounters | None = None
        self.remote: dict[int, dict[str, Any]] = {}
        self._cache_key: tuple[Any, ...] | None = None
        self._counters: Counter[str] = Counter()
        #: Open roll-ups, kept as partials change while tracking a processor; else rebuilt on refresh.
        self.rollups = RollupIndex()
        self._agencies: dict[str, dict[str, Any]] = {}
        self._agencies_key: tuple[Any, ...] | None = None
        self._scorecard: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self._scorecard_key: tuple[Any, ...] | None = None
        #: A merge that cost T seconds is redone at the earliest REFRESH_COST_FACTOR × T later
        #: (monotonic time), so polling the API in a backfill cannot take the worker's time.
        self._next_refresh_at = 0.0
        #: Flags kept outside partition state (AGENCY_SILENT, wall clock): callables
        #: returning the current ones, merged into ``flags`` on every read.
        self.live_flags: list[Callable[[], list[dict[str, Any]]]] = []

    def track(self, processor: Processor) -> None:
        """Show ``processor``'s partitions live, their counters and roll-ups kept as it commits."""
        self.local = processor.states
        self.owned = OwnedCounters()
        for state in processor.states.values():
            self.adopted(state)
        processor.listeners.append(self)

    # -- the processor's listener (streams.processor.StateListener) --
    def adopted(self, state: PartitionState) -> None:
        assert self.owned is not None
        self.owned.adopted(state)
        remote = self.remote.get(state.partition)
        if remote is not None:
            self.rollups.forget(state.partition, (group for group, _ in _partials_by_group(remote)))
        for group, partial in _partials_by_group(state):
            self.rollups.put(state.partition, group, partial)

    def dropped(self, state: PartitionState) -> None:
        assert self.owned is not None
        self.owned.dropped(state)
        self.rollups.forget(state.partition, list(state.stores.get(ROLLUP_PARTIALS, {})))
        remote = self.remote.get(state.partition)
        if remote is not None:  # until its new owner says more, what we published last
            for group, partial in _partials_by_group(remote):
                self.rollups.put(state.partition, group, partial)

    def applied(self, partition: int, delta: Delta) -> None:
        assert self.owned is not None
        self.owned.applied(partition, delta)
        for group, partial in (delta.put.get(ROLLUP_PARTIALS) or {}).items():
            self.rollups.put(partition, group, partial)

    def accept_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Keep the newest snapshot per partition (by sequence: owners never go back)."""
        partition = int(snapshot["partition"])
        current = self.remote.get(partition)
        if current is None or snapshot["seq"] >= current["seq"]:
            self.remote[partition] = snapshot
            if self.owned is not None and partition not in self.local:
                if current is not None:
                    self.rollups.forget(partition, (group for group, _ in _partials_by_group(current)))
                for group, partial in _partials_by_group(snapshot):
                    self.rollups.put(partition, group, partial)

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
        """Re-merge the counters of the partitions not tracked live (other workers' snapshots;
        every partition when no processor is tracked) when any of them moved on."""
        sources, key = self._version()
        if key == self._cache_key:
            return
        started = time.monotonic()
        if self._cache_key is not None and started < self._next_refresh_at:
            return  # moved on, but the last merge was costly: this one waits its turn
        counters: Counter[str] = Counter()
        for _, source in sources:
            if isinstance(source, PartitionState):
                if self.owned is None:
                    counters.update(dict(source.counters.items()))
            else:
                counters.update(source["counters"])
        if self.owned is None:  # not tracking a processor: the roll-ups are read again too
            self.rollups = RollupIndex()
            for partition, source in sources:
                for group, partial in _partials_by_group(source):
                    self.rollups.put(partition, group, partial)
        self._counters, self._cache_key = counters, key
        cost = time.monotonic() - started
        self._next_refresh_at = started + REFRESH_COST_FACTOR * cost if cost > REFRESH_FREE_S else 0.0

    @property
    def counters(self) -> Mapping[str, int]:
        """The city's counters: owned partitions live, the others from their latest snapshot."""
        self._refresh()
        if self.owned is None:
            return self._counters
        if not self._counters:
            return self.owned.total
        merged = Counter(self.owned.total)
        merged.update(self._counters)
        return merged

    def iter_flags(self) -> Iterator[Flag]:
        """Every flag, streamed: the flags of the partitions owned here (read from their
        stores, never held), one roll-up per ward × day merged from every partition's
        partial, and the live ones (AGENCY_SILENT). Other workers' partitions' flags are
        listed by their owners (``partitions_elsewhere``)."""
        for _, source in self._sources():
            if isinstance(source, PartitionState):
                for flag in source.stores[FLAGS].values():
                    if not is_partition_rollup(flag):
                        yield flag
        yield from self.iter_rollups()
        for live in self.live_flags:
            yield from live()

    def iter_rollups(self) -> Iterator[Flag]:
        """The merged SYNC_MISSING roll-ups, group by group: the sources' partials are read
        in group order and merged as they come (one group's partials in memory at a time)."""
        streams = [_partials_by_group(source) for _, source in self._sources()]
        for _, group in groupby(heapq.merge(*streams, key=itemgetter(0)), key=itemgetter(0)):
            flag = merge_partials(partial for _, partial in group)
            if flag is not None:
                yield flag

    @property
    def flags(self) -> list[Flag]:
        """``iter_flags`` as a list (tests and small views; the API streams ``iter_flags``)."""
        return list(self.iter_flags())

    def flag(self, fid: str) -> Flag | None:
        """One flag by id, looked up by key in each source (a roll-up merged from its group's partials)."""
        flag_type, _, subject = fid.partition(":")
        group = parse_rollup_subject(subject) if flag_type == "SYNC_MISSING" else None
        sources = self._sources()
        if group is not None:
            partials: list[Partial] = []
            for _, source in sources:
                if isinstance(source, PartitionState):
                    partial = source.stores.get(ROLLUP_PARTIALS, {}).get(group)
                    partials.extend([partial] if partial is not None else [])
                else:
                    partials.extend(p for p in source.get("partials", []) if group_of(p) == group)
            return merge_partials(partials)
        for _, source in sources:
            if isinstance(source, PartitionState):
                found = source.stores[FLAGS].get(fid)
                if found is not None:
                    return dict(found)
        return next((f for live in self.live_flags for f in live() if f["flag_id"] == fid), None)

    @property
    def partitions_elsewhere(self) -> list[int]:
        """Partitions whose flags this worker does not list (owned by other workers)."""
        return sorted(set(self.remote) - set(self.local))

    def open_flags_by(self, ward: str | None = None, day: str | None = None,
                      counters: Mapping[str, int] | None = None) -> Counter[tuple[str, str]]:
        """Open flags by (type, ward), for a ward and a local day of ``opened_at`` (None: all).

        From the flag counters of every partition (``flags:OPEN:...``), the open roll-ups
        and the live flags: never from the flags themselves. ``counters``: the city's
        counters when the caller has them already (``counters`` merges them on each read).
        """
        out: Counter[tuple[str, str]] = Counter()
        prefix = f"{FLAG_COUNT_PREFIX}OPEN:"
        for key, value in (self.counters if counters is None else counters).items():
            if value and key.startswith(prefix):
                metric, k_ward, k_day = split_counter_key(key)
                if (ward is None or k_ward == ward) and (day is None or k_day == day):
                    out[(parse_flag_count_metric(metric)[1], k_ward)] += value
        for r_ward, r_day, n in self.rollups.open_rollups():
            if (ward is None or r_ward == ward) and (day is None or r_day == day):
                out[("SYNC_MISSING", r_ward)] += n
        for live in self.live_flags:
            for flag in live():
                if flag["status"] == "OPEN" and (ward is None or flag["ward_code"] == ward) and (
                        day is None or local_day(int(flag["opened_at"])) == day):
                    out[(flag["type"], flag["ward_code"] or "")] += 1
        return +out

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
        live = [flag for source in self.live_flags for flag in source()]
        still_silent = any(p["end"] is None for p in silences)
        counters = self.counters
        key = (
            self._cache_key,
            (id(self.rollups), self.rollups.version),
            tuple((p["agency"], p["start"], p["end"]) for p in silences),
            tuple(sorted((f["flag_id"], f["status"]) for f in live)),
            now_ms // 60_000 if still_silent else 0,
        )
        if key != self._scorecard_key:
            self._scorecard = build_scorecard(counters.items(), live, silences, now_ms,
                                              rollups_open=self.rollups.open_rollups())
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

    def kpis(self, ward: str | None = None, day: str | None = None) -> dict[str, Any]:
        counters = self.counters  # merged once (a copy when other workers' partitions are known)
        metrics = filter_counters(counters.items(), ward, day)
        return compute_kpis(metrics, sum(self.open_flags_by(ward, day, counters).values()))

    @property
    def partitions_known(self) -> int:
        return len(set(self.local) | set(self.remote))
