"""Prometheus metrics of one worker: what operators graph and alert on.

Each worker owns its own :class:`CollectorRegistry`, so two hubs in one
process (tests, benchmarks) never mix their series. Per message the hub makes
one :meth:`HubMetrics.record` call, which only bumps a few pre-resolved label
children; everything that derives from state (open flags, heartbeat ages,
consumer lag, owned partitions) is computed when Prometheus scrapes, not per
event.

The same call keeps a short per-minute history of accepted events by agency,
which the dashboard draws as its throughput chart.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.topics import EVENT_TOPICS
from streams import store
from streams.api.worker_view import WorkerView
from streams.health import PROBLEMS, Problem

if TYPE_CHECKING:
    from streams.processor import Outcome

# ``_created`` samples double every counter's series for no operator value.
prometheus_client.disable_created_metrics()

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
#: Agency label of refused events: an undecodable message has no trustworthy source.
UNKNOWN_AGENCY = "UNKNOWN"
#: Minutes of throughput history kept for the dashboard chart.
HISTORY_MINUTES = 60
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class ThroughputHistory:
    """Accepted events per wall-clock minute and agency, for the last hour.

    Kept in the worker because Prometheus is not always there to ask, and the
    dashboard should show a chart from the first second it is opened.
    """

    def __init__(self, minutes: int = HISTORY_MINUTES) -> None:
        self.minutes = minutes
        self._buckets: OrderedDict[int, Tally[str]] = OrderedDict()

    def add(self, accepted: Tally[str], now_s: float) -> None:
        minute = int(now_s // 60) * 60
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = Tally()
            while len(self._buckets) > self.minutes:
                self._buckets.popitem(last=False)
        bucket.update(accepted)

    def rows(self, now_s: float | None = None) -> list[dict[str, Any]]:
        """One row per minute of the window (empty minutes included), oldest first."""
        now_minute = int((time.time() if now_s is None else now_s) // 60) * 60
        first = now_minute - (self.minutes - 1) * 60
        return [
            {"minute": minute, "by_agency": dict(self._buckets.get(minute, {}))}
            for minute in range(first, now_minute + 1, 60)
        ]


class _StateCollector(Collector):
    """Gauges read from the hub's state at scrape time (nothing to do per event)."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """Nothing to describe up front: the hub's state is not there yet at registration."""
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        hub = self.metrics.hub
        flags = GaugeMetricFamily("lienthong_flags_open", "Open data-sharing flags, by type.", labels=["type"])
        open_by_type: Tally[str] = Tally()
        for (flag_type, _), n in hub.view.open_flags_by().items():
            open_by_type[flag_type] += n
        for flag_type, n in sorted(open_by_type.items()):
            flags.add_metric([flag_type], n)
        yield flags

        now_ms = time.time() * 1000
        age = GaugeMetricFamily(
            "lienthong_connector_heartbeat_age_seconds",
            "Seconds since the hub last received an event or heartbeat from the agency.",
            labels=["agency"],
        )
        for agency, info in sorted(hub.view.agencies.items()):
            age.add_metric([agency], max(0.0, (now_ms - info["last_seen_ms"]) / 1000))
        yield age

        lag = GaugeMetricFamily(
            "lienthong_consumer_lag_messages",
            "Messages in the partition not yet processed by this worker (highwater - position).",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(self.metrics.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag

        yield GaugeMetricFamily(
            "lienthong_partitions_owned", "Event partitions this worker owns.", value=len(hub.partitions_owned)
        )
        restores = GaugeMetricFamily(
            "lienthong_partitions_restored",
            "Partition states opened since start, by source (local store; rebuilt from a checkpoint and the "
            "deltas after it; or from every delta of the changelog).",
            labels=["source"],
        )
        opened: dict[str, int] = getattr(hub, "restores", {})  # a hub without partition restores: none
        restores.add_metric(["local store"], opened.get("local store", 0))
        restores.add_metric(["checkpoint"], opened.get("checkpoint", 0))
        restores.add_metric(["changelog"], opened.get("changelog", 0))
        yield restores
        yield GaugeMetricFamily(
            "lienthong_changelog_deltas_folded", "Deltas read back from the changelog since start (restores).",
            value=opened.get("deltas", 0),
        )
        disk = getattr(hub, "disk", None)  # state on disk only (streams.restore)
        restore_seconds = GaugeMetricFamily(
            "lienthong_restore_seconds",
            "Seconds spent rebuilding partition databases since start, by step (state on disk): finding the "
            "newest checkpoint, loading it, folding the deltas after it (or every delta).",
            labels=["step"],
        )
        for step, seconds in (disk.seconds.items() if disk is not None else ()):
            restore_seconds.add_metric([step], seconds)
        yield restore_seconds
        checkpoints = getattr(hub, "checkpoints", None)  # state on disk only (streams.checkpoint)
        yield GaugeMetricFamily(
            "lienthong_checkpoints_written",
            "Partition checkpoints written into the changelog since start (marker acknowledged).",
            value=checkpoints.completed if checkpoints is not None else 0,
        )
        yield GaugeMetricFamily(
            "lienthong_checkpoint_parts_sent", "Checkpoint parts sent since start (state on disk).",
            value=checkpoints.parts_sent if checkpoints is not None else 0,
        )
        merge_store = getattr(hub, "merge_store", None)  # state on disk only (streams.merge_store)
        yield GaugeMetricFamily(
            "lienthong_rollup_partials_caught_up",
            "Roll-up partials read back from lienthong.rollup-partials since start, to catch the merge "
            "table up (state on disk: nothing on a restart on the worker's own databases).",
            value=merge_store.caught_up if merge_store is not None else 0,
        )
        if merge_store is not None:  # state on disk
            rocks = GaugeMetricFamily(
                "lienthong_state_store_memory_bytes",
                "Memory RocksDB holds for the worker's state databases, by part (block cache, "
                "memtables, table readers with their index and filter blocks).",
                labels=["part"],
            )
            for part, n in sorted(store.memory_usage().items()):
                rocks.add_metric([part], n)
            yield rocks
        yield from scorecard_families(hub.view.scorecard(list(hub.silence_periods), int(now_ms))[0])

        found = {problem.kind for problem in self.metrics.problems}
        yield GaugeMetricFamily("lienthong_worker_healthy", "1 while /healthz answers ok, 0 when unhealthy.",
                                value=0 if found else 1)
        problem = GaugeMetricFamily("lienthong_worker_problem", "1 for each reason /healthz answers 503.",
                                    labels=["kind"])
        for kind in PROBLEMS:
            problem.add_metric([kind], 1 if kind in found else 0)
        yield problem


#: Scorecard row field → (series name, help); one series per agency and local month.
SCORECARD_SERIES = {
    "events": ("lienthong_scorecard_events", "First-seen events from the agency, by local month of event time."),
    "dead_lettered": ("lienthong_scorecard_dead_lettered", "Messages or items from the agency's topics refused."),
    "dead_letter_share": ("lienthong_scorecard_dead_letter_share", "Dead-lettered / (events + dead-lettered)."),
    "sla_breaches": ("lienthong_scorecard_sla_breaches", "SLA flags (open or resolved) against the agency."),
    "flags_open": ("lienthong_scorecard_flags_open", "Open flags against the agency, by month opened."),
    "silences": ("lienthong_scorecard_silences", "Times the agency went silent (AGENCY_SILENT), by month begun."),
}


def scorecard_families(rows: list[dict[str, Any]]) -> Iterable[GaugeMetricFamily]:
    """The scorecard per agency and month (every ward) as gauges; per ward is left to the
    API, since 168 wards × agencies × months of series would swamp Prometheus."""
    for field, (name, help_text) in SCORECARD_SERIES.items():
        family = GaugeMetricFamily(name, help_text, labels=["agency", "month"])
        for row in rows:
            if row[field] is not None:
                family.add_metric([row["agency"], row["month"]], row[field])
        yield family
    delay = GaugeMetricFamily(
        "lienthong_scorecard_sharing_delay_seconds",
        "Event time to hub time of the agency's events (bucket upper bound, at most 19% above).",
        labels=["agency", "month", "quantile"],
    )
    for row in rows:
        for quantile, field in (("0.5", "delay_p50_s"), ("0.95", "delay_p95_s")):
            if row[field] is not None:
                delay.add_metric([row["agency"], row["month"], quantile], row[field])
    yield delay


class HubMetrics:
    """The metric families of one worker and the per-message recording call."""

    def __init__(self, hub: WorkerView) -> None:
        self.hub = hub
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "lienthong_events_received", "Events read from agency topics (valid, duplicate or refused).",
            ["topic", "agency"], registry=r,
        )
        self.processed = Counter(
            "lienthong_events_processed", "First-seen valid events applied to the counters.",
            ["topic", "agency"], registry=r,
        )
        self.duplicate = Counter(
            "lienthong_events_duplicate", "Events whose event_id was seen before (counted once).",
            ["topic", "agency"], registry=r,
        )
        self.dead_lettered = Counter(
            "lienthong_events_dead_lettered", "Events refused and sent to the dead-letter topic.",
            ["topic"], registry=r,
        )
        self.messages = Counter(
            "lienthong_messages_processed", "Kafka messages processed (a message may hold a batch).",
            ["topic"], registry=r,
        )
        self.latency = Histogram(
            "lienthong_processing_latency_seconds", "Kafka message timestamp to processed, in seconds.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        r.register(_StateCollector(self))
        self.throughput = ThroughputHistory()
        self._children: dict[tuple[int, tuple[str, ...]], Counter] = {}
        #: Next offset to process per (topic, partition), from processed messages.
        self.positions: dict[tuple[str, int], int] = {}
        #: Lag per (topic, partition), refreshed just before each scrape.
        self.lag: dict[tuple[str, int], int] = {}
        #: What /healthz found at the last scrape (see streams.health).
        self.problems: list[Problem] = []
        for topic in EVENT_TOPICS:  # series exist (at 0) before the first event
            self.messages.labels(topic)
            self.dead_lettered.labels(topic)

    def record(self, topic: str, partition: int, offset: int, timestamp_s: float, outcome: Outcome,
               messages: int = 1) -> None:
        """Account processed messages (a group's: up to ``offset``, the first sent at ``timestamp_s``);
        a replayed (skipped) one only moves the position."""
        self.positions[(topic, partition)] = offset + 1
        if outcome.skipped:
            return
        now = time.time()
        child = self._child
        child(self.messages, topic).inc(messages)
        latency = max(0.0, now - timestamp_s)  # a group's: its first (oldest) message's, for each
        for _ in range(messages):
            self.latency.observe(latency)
        for agency, n in outcome.accepted.items():
            child(self.processed, topic, agency).inc(n)
            child(self.received, topic, agency).inc(n)
        for agency, n in outcome.duplicates.items():
            child(self.duplicate, topic, agency).inc(n)
            child(self.received, topic, agency).inc(n)
        if outcome.dead_letters:
            child(self.dead_lettered, topic).inc(len(outcome.dead_letters))
            child(self.received, topic, UNKNOWN_AGENCY).inc(len(outcome.dead_letters))
        if outcome.accepted:
            self.throughput.add(outcome.accepted, now)

    def _child(self, family: Counter, *labels: str) -> Counter:
        """The labelled series, resolved once: ``labels()`` takes a lock on every call."""
        key = (id(family), labels)
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = family.labels(*labels)
        return series

    async def refresh_lag(self) -> None:
        """Recompute consumer lag of the owned event partitions from the Faust consumer."""
        consumer = self.hub.consumer
        lag: dict[tuple[str, int], int] = {}
        try:
            assignment = consumer.assignment()
        except Exception:  # noqa: BLE001 - not started or mid-rebalance: nothing to report
            assignment = set()
        for tp in assignment:
            if tp.topic not in EVENT_TOPICS:
                continue
            try:
                highwater = consumer.highwater(tp)
            except AssertionError:
                # aiokafka asserts the partition is assigned. Its consumer thread
                # may have taken it away since ``assignment()`` (a rebalance runs
                # there, this timer in the main thread); raising here would crash
                # the app from a once-a-second timer. Not ours any more: no lag.
                continue
            if highwater is None:
                continue
            position = self.positions.get((tp.topic, tp.partition))
            if position is None:
                # Nothing processed here yet: processing starts at the committed
                # offset (the start for a new group). Not the client's position,
                # which runs ahead by whatever Faust prefetched into the stream.
                position = consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
            lag[(tp.topic, tp.partition)] = max(0, int(highwater) - int(position))
        self.lag = lag

    def total_lag(self) -> int:
        return sum(self.lag.values())

    async def exposition(self) -> bytes:
        """The Prometheus text format of every series, with lag and health fresh for this scrape."""
        self.problems = await self.hub.problems()
        return generate_latest(self.registry)


def iter_families(text: str) -> Iterable[Any]:
    """Parsed metric families of an exposition (for the CLI and tests)."""
    from prometheus_client.parser import text_string_to_metric_families

    return text_string_to_metric_families(text)
