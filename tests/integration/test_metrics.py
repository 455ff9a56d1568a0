"""Prometheus /metrics of a live worker after a known import."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_web_api import import_id_cards, send_garbage
from tests.support import wait_for

pytestmark = pytest.mark.integration

IDENTITY = {"topic": "lienthong.identity"}
POLICE = {"topic": "lienthong.identity", "agency": "POLICE"}


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by sample name: (labels, value)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lbl, v in samples.get(name, []) if all(lbl.get(k) == x for k, x in labels.items()))


def test_metrics_count_a_known_import_and_its_garbage(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 120)
    send_garbage(broker, 3)
    samples = wait_for(
        lambda: (s := scrape(worker.url))
        and value(s, "lienthong_events_processed_total", **POLICE) == 120
        and value(s, "lienthong_events_dead_lettered_total", **IDENTITY) == 3
        and s,
        60, what="120 processed and 3 dead-lettered",
    )
    assert value(samples, "lienthong_events_duplicate_total", **POLICE) == 0
    assert value(samples, "lienthong_events_received_total", topic="lienthong.identity") == 123
    assert value(samples, "lienthong_messages_processed_total", **IDENTITY) >= 4  # batches + 3 garbage
    assert value(samples, "lienthong_processing_latency_seconds_count") == value(
        samples, "lienthong_messages_processed_total")
    assert value(samples, "lienthong_partitions_owned") == 8
    assert {lbl["partition"] for lbl, _ in samples["lienthong_consumer_lag_messages"]
            if lbl["topic"] == "lienthong.identity"} == {str(p) for p in range(8)}
    assert value(samples, "lienthong_flags_open", type="CONTRACT_VIOLATION") >= 1
    assert [lbl["agency"] for lbl, _ in samples["lienthong_connector_heartbeat_age_seconds"]] == ["POLICE"]


def test_a_reimport_shows_up_as_duplicates_not_processed(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 50)
    import_id_cards(broker, tmp_path, 50)
    samples = wait_for(
        lambda: (s := scrape(worker.url)) and value(s, "lienthong_events_duplicate_total", **POLICE) == 50 and s,
        60, what="50 duplicates",
    )
    assert value(samples, "lienthong_events_processed_total", **POLICE) == 50
