"""HubMetrics without a broker: what one processed message adds to the series."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.api.metrics import HubMetrics, ThroughputHistory
from streams.health import Problem
from streams.processor import Outcome


class _Consumer:
    def assignment(self) -> set[Any]:
        return set()


SCORECARD_ROW = {
    "agency": "POLICE", "ward": None, "month": "2024-06", "events": 7, "dead_lettered": 1,
    "dead_letter_share": 0.125, "delay_p50_s": 2.0, "delay_p95_s": 90.5, "sla_breaches": 3,
    "flags_open": 2, "silences": 1, "silent_s": 60.0,
}


def fake_hub() -> Any:
    view = SimpleNamespace(
        open_flags_by=lambda: Counter({("SYNC_FAILED", "26734"): 1}),
        agencies={"POLICE": {"last_seen_ms": 0, "events": 1}},
        scorecard=lambda periods, now_ms: ([SCORECARD_ROW], []),
    )
    return SimpleNamespace(view=view, partitions_owned={0, 3}, consumer=_Consumer(), problems=_no_problems,
                           silence_periods=[])


async def _no_problems() -> list[Problem]:
    return []


def samples(metrics: HubMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import asyncio

    text = asyncio.run(metrics.exposition()).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_one_message_counts_accepted_duplicate_and_refused_events_by_agency():
    metrics = HubMetrics(fake_hub())
    outcome = Outcome(accepted=Counter(POLICE=4), duplicates=Counter(POLICE=1))
    outcome.dead_letters = [object(), object()]  # type: ignore[list-item]
    metrics.record("lienthong.identity", 2, 10, 0.0, outcome)
    s = samples(metrics)
    police = (("agency", "POLICE"), ("topic", "lienthong.identity"))
    assert s[("lienthong_events_processed_total", police)] == 4
    assert s[("lienthong_events_duplicate_total", police)] == 1
    assert s[("lienthong_events_received_total", police)] == 5
    assert s[("lienthong_events_dead_lettered_total", (("topic", "lienthong.identity"),))] == 2
    assert s[("lienthong_messages_processed_total", (("topic", "lienthong.identity"),))] == 1


def test_a_replayed_message_is_not_counted_again():
    metrics = HubMetrics(fake_hub())
    metrics.record("lienthong.identity", 2, 10, 0.0, Outcome(skipped=True))
    assert samples(metrics)[("lienthong_messages_processed_total", (("topic", "lienthong.identity"),))] == 0
    assert metrics.positions[("lienthong.identity", 2)] == 11


def test_state_gauges_are_read_at_scrape_time():
    s = samples(HubMetrics(fake_hub()))
    assert s[("lienthong_flags_open", (("type", "SYNC_FAILED"),))] == 1
    assert s[("lienthong_partitions_owned", ())] == 2
    assert s[("lienthong_connector_heartbeat_age_seconds", (("agency", "POLICE"),))] > 0


def test_two_hubs_keep_separate_registries():
    a, b = HubMetrics(fake_hub()), HubMetrics(fake_hub())
    a.record("lienthong.identity", 0, 0, 0.0, Outcome(accepted=Counter(POLICE=1)))
    assert samples(b)[("lienthong_messages_processed_total", (("topic", "lienthong.identity"),))] == 0


def test_throughput_history_buckets_by_minute_and_keeps_the_window():
    history = ThroughputHistory(minutes=3)
    history.add(Counter(POLICE=2), 60.0)
    history.add(Counter(POLICE=1, HEALTH=5), 119.0)
    history.add(Counter(HEALTH=1), 300.0)
    assert history.rows(now_s=300.0) == [
        {"minute": 180, "by_agency": {}},
        {"minute": 240, "by_agency": {}},
        {"minute": 300, "by_agency": {"HEALTH": 1}},
    ]
    assert history.rows(now_s=120.0)[1] == {"minute": 60, "by_agency": {"POLICE": 3, "HEALTH": 5}}


def test_health_gauges_say_what_healthz_says():
    hub = fake_hub()
    metrics = HubMetrics(hub)
    assert samples(metrics)[("lienthong_worker_healthy", ())] == 1

    async def stalled() -> list[Problem]:
        return [Problem("stalled", "5 messages waiting")]

    hub.problems = stalled
    got = samples(metrics)
    assert got[("lienthong_worker_healthy", ())] == 0
    assert got[("lienthong_worker_problem", (("kind", "stalled"),))] == 1
    assert got[("lienthong_worker_problem", (("kind", "recovery_unfinished"),))] == 0


def test_scorecard_is_exported_per_agency_and_month():
    s = samples(HubMetrics(fake_hub()))
    labels = (("agency", "POLICE"), ("month", "2024-06"))
    assert s[("lienthong_scorecard_events", labels)] == 7
    assert s[("lienthong_scorecard_dead_letter_share", labels)] == 0.125
    assert s[("lienthong_scorecard_sla_breaches", labels)] == 3
    assert s[("lienthong_scorecard_flags_open", labels)] == 2
    assert s[("lienthong_scorecard_silences", labels)] == 1
    assert s[("lienthong_scorecard_sharing_delay_seconds", (*labels, ("quantile", "0.95")))] == 90.5


class _RebalancingConsumer:
    """Lists two partitions, then (a rebalance in the consumer thread) no longer owns the first."""

    def __init__(self) -> None:
        from faust.types import TP

        from schemas.topics import EVENT_TOPICS

        self.gone = TP(EVENT_TOPICS[0], 0)
        self.kept = TP(EVENT_TOPICS[0], 1)
        self._committed_offset = {self.kept: 4}

    def assignment(self) -> set[Any]:
        return {self.gone, self.kept}

    def highwater(self, tp: Any) -> int:
        assert tp != self.gone, "Partition is not assigned"  # as aiokafka's highwater()
        return 10


def test_lag_skips_a_partition_revoked_while_it_is_being_read():
    import asyncio

    consumer = _RebalancingConsumer()
    hub = fake_hub()
    hub.consumer = consumer
    metrics = HubMetrics(hub)
    asyncio.run(metrics.refresh_lag())  # raised AssertionError, crashing the app from its timer
    assert metrics.lag == {(consumer.kept.topic, 1): 6}
