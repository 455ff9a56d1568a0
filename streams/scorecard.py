"""The scorecard per agency: is each agency's data shared, and shared in time?

Per agency, per month (the city's local month of the event) and per ward:
events, the share dead-lettered, the median and 95th-percentile **sharing
delay** (event time → hub time: ``occurred_at`` to the Kafka timestamp of the
message that brought the event), SLA breaches, open flags and silences.

Everything that comes from the event history is kept as counters, added by the
:class:`ScorecardCounting` reaction beside the city's counters, so it is fenced like every other count and merges across
partitions and workers by addition:

* ``delay:<AGENCY>:<bucket>|ward|day`` — first-seen events by sharing delay, in
  fixed log-scale buckets: a mergeable histogram, since percentiles of
  partitions cannot be combined but bucket counts can. Bucket ``b >= 1`` holds
  delays in ``(2^((b-1)/4), 2^(b/4)]`` ms (19% wide); bucket 0 holds delays up to
  1 ms, including negative ones (an agency clock ahead of the hub's). A
  percentile is reported as the upper bound of the bucket holding it
  (nearest-rank), so it is at most 19% above the exact value, never below.
* ``deadletter:<AGENCY>||day`` — refused messages or batch items, by the agency
  of their topic (``UNKNOWN`` for heartbeats) and the local day of the Kafka
  timestamp; no ward (a refused message has no trustworthy one).

SLA breaches and open flags come from the flags (by the flag's agency and ward,
and the local month of ``opened_at``; a ``SYNC_MISSING`` roll-up is one open
flag and as many breaches as citizens behind it, counted by the roll-up rule as
``rollup_behind:<AGENCY>|ward|day`` counters); silences from the worker's
:class:`streams.silence.SilenceMonitor` (wall clock, agency level).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.contracts import WALL_CLOCK_EVENTS, agency_of_topic
from schemas.errors import ContractError
from streams.clock import local_day
from streams.flags.records import FLAG_COUNT_PREFIX, parse_flag_count_metric
from streams.flags.rollups import AGENCY as ROLLUP_AGENCY
from streams.flags.rollups import BEHIND_PREFIX, parse_rollup_subject
from streams.reaction import BaseReaction, Event
from streams.state import Change, SourcePosition, split_counter_key

DELAY_PREFIX = "delay:"
DEADLETTER_PREFIX = "deadletter:"
#: Buckets per doubling of the delay.
BUCKETS_PER_OCTAVE = 4
#: Flag types that measure an SLA: a flag of one (open or resolved) is a breach.
SLA_FLAG_TYPES = frozenset({"SYNC_MISSING", "CHAIN_STALLED", "PROCEDURE_OVERDUE"})
QUANTILES = (0.5, 0.95)
#: Row key of an agency's month over every ward.
ALL_WARDS = None


def bucket_upper_ms(bucket: int) -> float:
    return 1.0 if bucket <= 0 else 2.0 ** (bucket / BUCKETS_PER_OCTAVE)


#: Upper bounds of the buckets, up to 2^50 ms (35,000 years): one bisect per event.
_UPPER = [bucket_upper_ms(b) for b in range(50 * BUCKETS_PER_OCTAVE + 1)]


def delay_bucket(delay_ms: int) -> int:
    """The histogram bucket of a sharing delay (see the module docstring)."""
    return bisect_left(_UPPER, delay_ms)


def delay_counter(agency: str, occurred_at: int, hub_ms: int) -> str:
    """The metric name of one event's sharing delay (the ward and day are the event's)."""
    return f"{DELAY_PREFIX}{agency}:{delay_bucket(hub_ms - occurred_at)}"


class ScorecardCounting(BaseReaction):
    """The scorecard's counters: each first-seen event's sharing delay, each refusal by agency."""

    def on_event(self, event: Event, change: Change) -> None:
        # heartbeats carry wall-clock time: only agency events have a sharing delay
        if event["event_type"] in WALL_CLOCK_EVENTS:
            return
        assert change.source is not None
        at = event["occurred_at"]
        change.count(delay_counter(event["source"], at, change.source.timestamp), event["ward_code"], local_day(at))

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        _count_refused(change, where)

    def on_beyond_horizon(self, event: Event, change: Change) -> None:
        assert change.source is not None
        _count_refused(change, change.source)


def _count_refused(change: Change, where: SourcePosition) -> None:
    change.count(DEADLETTER_PREFIX + (agency_of_topic(where.topic) or "UNKNOWN"), "", local_day(where.timestamp))


def percentile_ms(histogram: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank ``q`` percentile of a bucket histogram (the bucket's upper bound)."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket)
    return None  # unreachable: seen ends at total


def month_of(ms: int) -> str:
    return local_day(ms)[:7]


class _Cell:
    """The figures of one (agency, ward, month)."""

    __slots__ = ("breaches", "dead", "delays", "events", "open", "silences", "silent_ms")

    def __init__(self) -> None:
        self.events = self.dead = self.breaches = self.open = self.silences = self.silent_ms = 0
        self.delays: Counter[int] = Counter()

    def row(self, agency: str, ward: str | None, month: str) -> dict[str, Any]:
        received = self.events + self.dead
        p50, p95 = (percentile_ms(self.delays, q) for q in QUANTILES)
        return {
            "agency": agency,
            "ward": ward,
            "month": month,
            "events": self.events,
            "dead_lettered": self.dead,
            "dead_letter_share": round(self.dead / received, 6) if received else None,
            "delay_p50_s": None if p50 is None else round(p50 / 1000, 3),
            "delay_p95_s": None if p95 is None else round(p95 / 1000, 3),
            "sla_breaches": self.breaches,
            "flags_open": self.open,
            "silences": self.silences,
            "silent_s": round(self.silent_ms / 1000, 1),
        }


def build_scorecard(
    counters: Iterable[tuple[str, int]],
    flags: Iterable[Mapping[str, Any]],
    silences: Iterable[Mapping[str, Any]] = (),
    now_ms: int = 0,
    *,
    rollups_open: Iterable[tuple[str, str, int]] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows per agency × month over all wards, rows per agency × ward × month).

    ``silences``: ``{"agency", "start", "end"}`` periods (``end`` None while silent,
    measured to ``now_ms``); counted in the month they began. The citizen flags
    behind ``SYNC_MISSING`` roll-ups are breaches too, one each (the roll-up itself
    is one open flag, not one breach): read from their ``rollup_behind:`` counters.

    The flags of partition state come as counters too (``flags:<STATUS>:<TYPE>:<AGENCY>``,
    ``streams.flags.records``); ``flags`` are the others (AGENCY_SILENT, held outside
    partition state) and ``rollups_open`` the open roll-ups by (ward, local day, count).
    """
    cells: dict[tuple[str, str | None, str], _Cell] = {}

    def cell(agency: str, ward: str | None, month: str) -> list[_Cell]:
        keys = [(agency, ALL_WARDS, month)] + ([(agency, ward, month)] if ward else [])
        return [cells.setdefault(k, _Cell()) for k in keys]

    for key, value in counters:
        if key.startswith("agency:"):
            metric, ward, day = split_counter_key(key)
            for c in cell(metric[len("agency:"):], ward, day[:7]):
                c.events += value
        elif key.startswith(DELAY_PREFIX):
            metric, ward, day = split_counter_key(key)
            agency, bucket = metric[len(DELAY_PREFIX):].rsplit(":", 1)
            for c in cell(agency, ward, day[:7]):
                c.delays[int(bucket)] += value
        elif key.startswith(DEADLETTER_PREFIX):
            metric, _, day = split_counter_key(key)
            for c in cell(metric[len(DEADLETTER_PREFIX):], None, day[:7]):
                c.dead += value
        elif key.startswith(BEHIND_PREFIX):
            metric, ward, day = split_counter_key(key)
            for c in cell(metric[len(BEHIND_PREFIX):], ward or None, day[:7]):
                c.breaches += value
        elif key.startswith(FLAG_COUNT_PREFIX) and value:
            metric, ward, day = split_counter_key(key)
            status, flag_type, agency = parse_flag_count_metric(metric)
            if agency:
                for c in cell(agency, ward or None, day[:7]):
                    c.open += value if status == "OPEN" else 0
                    c.breaches += value if flag_type in SLA_FLAG_TYPES else 0
    for ward, day, n in rollups_open:
        for c in cell(ROLLUP_AGENCY, ward or None, day[:7]):
            c.open += n
    for flag in flags:
        is_open = flag["status"] == "OPEN"
        breach = flag["type"] in SLA_FLAG_TYPES and parse_rollup_subject(flag["subject"]) is None
        if not (is_open or breach) or not flag["agency"]:
            continue
        for c in cell(flag["agency"], flag["ward_code"] or None, month_of(int(flag["opened_at"]))):
            c.open += is_open
            c.breaches += breach
    for period in silences:
        start = int(period["start"])
        end = period.get("end")
        for c in cell(period["agency"], None, month_of(start)):
            c.silences += 1
            c.silent_ms += max(0, (int(end) if end is not None else now_ms) - start)
    ordered = sorted(cells.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1] or ""))
    totals = [c.row(a, w, m) for (a, w, m), c in ordered if w is ALL_WARDS]
    by_ward = [c.row(a, w, m) for (a, w, m), c in ordered if w is not ALL_WARDS]
    return totals, by_ward
