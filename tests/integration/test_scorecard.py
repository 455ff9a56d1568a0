"""The agency scorecard of a real worker equals a computation of its own from the published events.

Events of every agency are published with sharing delays from a few ms to two
days (event time in the past, hub time = the Kafka timestamp of the message),
plus repeats and undecodable messages. The test then reads every event topic
back (messages, partitions, timestamps), computes each figure itself, and
compares with ``GET /api/agencies`` and ``/metrics``.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from connectors.sdk import Publisher
from schemas.codec import EventCodec
from schemas.contracts import TOPIC_OF_EVENT
from schemas.topics import EVENT_TOPICS
from schemas.wards import ward_codes
from streams.api.metrics import iter_families
from streams.clock import CITY_TZ, local_day
from tests.support import get_json, wait_for
from tests.unit.test_flags import event

pytestmark = pytest.mark.integration

CODEC = EventCodec()
WARDS = sorted(ward_codes())[:3]
DAY_MS = 86_400_000
#: topic of refused messages → agency the scorecard charges them to
GARBAGE_TOPICS = {"lienthong.insurance": "SOCIAL_INSURANCE", "lienthong.health": "HEALTH"}


def city_events(rng: random.Random, now: int) -> list[dict[str, Any]]:
    """Every agency's events with sharing delays from ms to two days, in event-time order."""
    out: list[dict[str, Any]] = []

    def at() -> int:
        return now - int(10 ** rng.uniform(0, math.log10(2 * DAY_MS)))

    def add(event_type: str, occurred_at: int, citizen: int, **payload: Any) -> dict[str, Any]:
        e = event(event_type, occurred_at, citizen, **payload)
        e["ward_code"] = rng.choice(WARDS)
        out.append(e)
        return e

    for n in range(40):
        add("IdCardIssued", at(), n, card_kind="CCCD_CHIP")
        add("HealthInsuranceSynced", at(), 100 + n, outcome="SYNCED" if n % 4 else "FAILED",
            failure_reason=None if n % 4 else "mismatch")
        add("MedicalCheckIn", at(), 200 + n, facility_code="79001", insurance_lookup="FOUND")
        add("JudicialRecordIssued", at(), 300 + n, channel="VNEID")
        add("WelfarePaid", at(), 400 + n, channel="CASH", amount_vnd=1000)
    for n in range(15):  # dossiers: submitted, then completed on time or late
        start = now - rng.randrange(DAY_MS, 2 * DAY_MS)
        due = start + rng.randrange(3_600_000, 12 * 3_600_000)
        done = start + rng.randrange(60_000, DAY_MS - 60_000)
        dossier = f"SC-{n}"
        submitted = add("ProcedureSubmitted", start, 500 + n, procedure_code="1.001", agency_code="SO_TU_PHAP",
                        online_level="FULL", due_at=due)
        submitted["correlation_id"] = dossier
        completed = add("ProcedureCompleted", done, 500 + n, outcome="APPROVED")
        completed.update(correlation_id=dossier, ward_code=submitted["ward_code"])
    out.sort(key=lambda e: e["occurred_at"])
    return out


def read_back(bootstrap: str) -> list[tuple[str, int, int, int, bytes]]:
    """Every message of the event topics: (topic, partition, offset, timestamp ms, value)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in EVENT_TOPICS for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return sorted((m.topic, m.partition, m.offset, m.timestamp, m.value) for m in consumer)
    finally:
        consumer.close()


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def expected_scorecard(messages: list[tuple[str, int, int, int, bytes]]) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    """The scorecard computed from the messages alone: (agency, ward or None, month) → figures."""
    cells: dict[tuple[str, str | None, str], dict[str, Any]] = defaultdict(
        lambda: {"events": 0, "dead": 0, "delays": [], "breaches": 0, "open": 0})
    seen: set[str] = set()
    submitted: dict[str, dict[str, Any]] = {}
    completed: dict[str, dict[str, Any]] = {}
    open_failed: dict[str, dict[str, Any]] = {}
    tallies: set[tuple[str, str, str, int]] = set()  # (type, agency, day, partition)
    tally_opened: dict[tuple[str, str, str, int], int] = {}
    watermark: dict[int, int] = defaultdict(int)  # newest event time per partition, every topic

    def cells_of(agency: str, ward: str | None, month: str) -> list[dict[str, Any]]:
        return [cells[(agency, None, month)]] + ([cells[(agency, ward, month)]] if ward else [])

    def tally(kind: str, agency: str, at: int, partition: int) -> None:
        key = (kind, agency, local_day(at), partition)
        tallies.add(key)
        tally_opened[key] = min(tally_opened.get(key, at), at)

    for topic, partition, _, timestamp, value in messages:
        try:
            events = CODEC.decode_message(value)
        except Exception:  # noqa: BLE001 - what the worker refuses
            for c in cells_of(GARBAGE_TOPICS[topic], None, local_day(timestamp)[:7]):
                c["dead"] += 1
            tally("CONTRACT_VIOLATION", GARBAGE_TOPICS[topic], timestamp, partition)
            continue
        for e in events:
            if e["event_id"] in seen:
                tally("DUPLICATE_EVENT", e["source"], e["occurred_at"], partition)
                continue
            seen.add(e["event_id"])
            watermark[partition] = max(watermark[partition], e["occurred_at"])
            for c in cells_of(e["source"], e["ward_code"], local_day(e["occurred_at"])[:7]):
                c["events"] += 1
                c["delays"].append(timestamp - e["occurred_at"])
            if e["event_type"] == "ProcedureSubmitted":
                submitted[e["correlation_id"]] = e
            elif e["event_type"] == "ProcedureCompleted":
                completed[e["correlation_id"]] = e
            elif e["event_type"] == "HealthInsuranceSynced" and e["outcome"] == "FAILED":
                open_failed[e["citizen_ref"]] = e
    for dossier, s in submitted.items():  # PROCEDURE_OVERDUE (resolved): a breach, month of the due date
        if completed[dossier]["occurred_at"] > s["due_at"]:
            for c in cells_of("PORTAL", s["ward_code"], local_day(s["due_at"])[:7]):
                c["breaches"] += 1
    for e in open_failed.values():  # SYNC_FAILED, never fixed: open
        for c in cells_of("SOCIAL_INSURANCE", e["ward_code"], local_day(e["occurred_at"])[:7]):
            c["open"] += 1
    for key in tallies:  # a tally is open until its partition's event time passes the end of its day
        day_end = datetime.combine(date.fromisoformat(key[2]) + timedelta(days=1), datetime.min.time(), CITY_TZ)
        if watermark[key[3]] <= day_end.timestamp() * 1000:
            for c in cells_of(key[1], None, local_day(tally_opened[key])[:7]):
                c["open"] += 1
    return cells


def test_scorecard_equals_an_independent_computation_from_the_published_events(broker, workers):
    from kafka import KafkaProducer

    worker = workers()
    rng = random.Random(15)
    history = city_events(rng, int(time.time() * 1000))
    repeats = [dict(e) for e in rng.sample(history, 8)]
    publisher = Publisher(broker, connector="test")
    for e in history + repeats:
        publisher.publish(e)
    publisher.flush()
    publisher.producer.close()
    producer = KafkaProducer(bootstrap_servers=broker)
    for n, topic in enumerate([*GARBAGE_TOPICS] * 3):
        producer.send(topic, key=f"bad-{n}".encode(), value=b"not an event %d" % n)
    producer.flush()
    producer.close()

    received = len(history) + len(repeats) + 6
    wait_for(lambda: (k := worker.kpis())["events_total"] + k["events_duplicate"] + k["events_dead_lettered"]
             == received, 90, what="every message counted")
    messages = read_back(broker)
    assert len({m[:3] for m in messages}) == received and {TOPIC_OF_EVENT[e["event_type"]] for e in history}
    expected = expected_scorecard(messages)

    def scorecard_matches() -> bool:
        body = worker.get("/api/agencies?wards=all")
        rows = {(r["agency"], r["ward"], r["month"]): r for r in body["scorecard"] + body["scorecard_wards"]}
        return set(rows) == set(expected) and all(
            (rows[k]["events"], rows[k]["dead_lettered"], rows[k]["sla_breaches"], rows[k]["flags_open"])
            == (c["events"], c["dead"], c["breaches"], c["open"]) for k, c in expected.items())

    wait_for(scorecard_matches, 30, what="the scorecard's counts to equal the independent ones")
    body = worker.get("/api/agencies?wards=all")
    rows = {(r["agency"], r["ward"], r["month"]): r for r in body["scorecard"] + body["scorecard_wards"]}
    for key, c in expected.items():
        row = rows[key]
        received_here = c["events"] + c["dead"]
        assert row["dead_letter_share"] == (round(c["dead"] / received_here, 6) if received_here else None), key
        assert (row["silences"], row["silent_s"]) == (0, 0.0)
        for q, field in ((0.5, "delay_p50_s"), (0.95, "delay_p95_s")):
            if not c["delays"]:
                assert row[field] is None, key
                continue
            exact_ms = nearest_rank(c["delays"], q)
            reported_ms = row[field] * 1000
            # the bucket's upper bound: never below the exact value, at most 19% above (±1 ms rounding)
            assert exact_ms - 1 <= reported_ms <= max(1.0, exact_ms * 2**0.25) + 1, (key, field, exact_ms, row)
    assert any(c["breaches"] for c in expected.values()) and any(c["dead"] for c in expected.values())

    # the same figures as Prometheus series, per agency and month
    text = get_json_text(f"{worker.url}/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in iter_families(text) for s in family.samples}
    for (agency, ward, month), c in expected.items():
        if ward is None:
            labels = (("agency", agency), ("month", month))
            assert samples[("lienthong_scorecard_events", labels)] == c["events"]
            assert samples[("lienthong_scorecard_sla_breaches", labels)] == c["breaches"]
            assert samples[("lienthong_scorecard_flags_open", labels)] == c["open"]


def get_json_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local test server
        return str(response.read().decode())


def test_agencies_refuses_a_malformed_month(workers):
    worker = workers()
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(f"{worker.url}/api/agencies?month=2024-13")
    assert refused.value.code == 400
