"""Police onboarding against a real worker: no record it writes exceeds the bound, and it ends exact.

A month of July ID cards is read while social insurance's feed is not yet idle
(so its clock stays put), then August events arrive with every feed idle: every
July ``SYNC_MISSING`` deadline falls due at once. The worker reconciles them
``LIENTHONG_DEADLINE_STEP`` per message and splits any record larger than
``LIENTHONG_MAX_RECORD_BYTES``; every record on the changelog, aggregates and
alerts topics is read back and measured (issue 12).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from bench.onboarding import AUGUST_MS, DAY_MS, july_cards
from connectors.sdk import Publisher
from schemas.codec import EventCodec
from schemas.contracts import partition_key
from schemas.partitioning import partition_for
from schemas.topics import AGGREGATES, ALERTS
from streams import parts
from tests.support import WorkerProcess, wait_for
from tests.unit.test_flags import welfare

pytestmark = pytest.mark.integration

CODEC = EventCodec()
CARDS = 10_000
STEP = 200
BOUND = 128 * 1024  # below a full batch's delta (~200 KB): deltas are split too
#: Seconds a caught-up feed must be quiet to be idle: longer than reading the July backlog takes.
SOURCE_IDLE_S = 40
CHANGELOG = "lienthong-deltas-changelog"


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record of a topic, all partitions, from the start."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000, max_partition_fetch_bytes=16 * 1024 * 1024)
    try:
        return [(m.key or b"", m.value or b"") for m in consumer]
    finally:
        consumer.close()


def nudges(per_partition: int) -> list[dict[str, Any]]:
    """Welfare payments dated mid-August, ``per_partition`` on every partition: each is one message."""
    out: list[dict[str, Any]] = []
    count = dict.fromkeys(range(8), 0)
    citizen = 10**6
    while min(count.values()) < per_partition:
        e = welfare(AUGUST_MS + 10 * DAY_MS, citizen=citizen)
        p = partition_for(partition_key(e), 8)
        if count[p] < per_partition:
            count[p] += 1
            out.append(e)
        citizen += 1
    return out


def open_sync_missing(worker: WorkerProcess) -> set[str]:
    """Every open SYNC_MISSING flag id on the API, page by page."""
    ids: set[str] = set()
    cursor = ""
    while True:
        page = worker.get(f"/api/flags?type=SYNC_MISSING&status=OPEN&limit=1000{cursor}")
        ids.update(f["flag_id"] for f in page["flags"])
        if not page.get("next_cursor"):
            return ids
        cursor = f"&cursor={page['next_cursor']}"


def flags_in(delta_value: bytes) -> int:
    return sum(1 for k in orjson.loads(delta_value).get("p", {}).get("flags", {}) if k.startswith("SYNC_MISSING:"))


def test_a_month_of_cards_falling_due_at_once_is_written_in_records_within_the_bound(broker, workers):
    cards = july_cards(CARDS)
    with Publisher(broker, connector="police", batch_size=500) as publisher:
        for card in cards:
            publisher.publish(card)
    worker = workers(name="onboarding", store="rocksdb://", LIENTHONG_DEADLINE_STEP=str(STEP),
                     LIENTHONG_MAX_RECORD_BYTES=str(BOUND), LIENTHONG_SLA_SOURCE_IDLE=str(SOURCE_IDLE_S / 3600))
    started = time.monotonic()
    wait_for(lambda: worker.kpis()["id_cards_issued"] == CARDS, 120, what="the July cards counted")
    assert worker.kpis()["flags_open"] < CARDS // 2  # the deadlines are still ahead: the jump is
    time.sleep(max(0.0, SOURCE_IDLE_S + 3 - (time.monotonic() - started)))  # social insurance idle now
    late = nudges(per_partition=20)
    with Publisher(broker, connector="labour", batch_size=1) as publisher:
        for e in late:
            publisher.publish(e)

    expected = {f"SYNC_MISSING:{c['citizen_ref']}" for c in cards}
    wait_for(lambda: worker.kpis()["flags_open"] == len(expected), 180, interval=1.0,
             what="every July card's SYNC_MISSING")
    wait_for(lambda: worker.kpis()["events_total"] == CARDS + len(late), 60, what="the August events counted")
    assert open_sync_missing(worker) == expected
    kpis = worker.kpis()
    assert (kpis["id_cards_issued"], kpis["events_total"]) == (CARDS, CARDS + len(late))

    changelog = read_all(broker, CHANGELOG)
    written = {topic: read_all(broker, topic) for topic in (AGGREGATES, ALERTS)} | {CHANGELOG: changelog}
    for topic, records in written.items():
        assert records, f"nothing on {topic}"
        largest = max(len(k) + len(v) for k, v in records)
        assert largest <= BOUND, f"a {largest}-byte record on {topic}"
    deltas = parts.assemble((orjson.loads(k), v) for k, v in changelog if v)
    per_delta = [flags_in(v) for v in deltas.values()]
    assert sum(per_delta) == len(expected)  # each July card's flag written once
    assert max(per_delta) <= STEP
    assert any(parts.is_part(v) for _, v in written[AGGREGATES]), "no snapshot needed splitting"
    assert any(parts.is_part(v) for _, v in changelog), "no delta needed splitting"
    announced = {(a["flag_id"], a["status"]) for a in (CODEC.decode_record(v)[1] for _, v in written[ALERTS])}
    assert announced == {(fid, "OPEN") for fid in expected}

    # a restart restores from the changelog, parts and all: the same counts and flags
    worker.kill()
    again = workers(name="onboarding", store="rocksdb://", LIENTHONG_MAX_RECORD_BYTES=str(BOUND))
    wait_for(lambda: again.kpis()["events_total"] == CARDS + len(late), 120, what="the restored counts")
    assert again.kpis() == kpis
    assert open_sync_missing(again) == expected
