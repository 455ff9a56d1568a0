"""Flags end to end: real broker, real worker, seen on GET /api/flags and on lienthong.alerts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connectors.sdk import Publisher
from schemas.codec import EventCodec
from schemas.topics import ALERTS
from tests.support import WorkerProcess, wait_for
from tests.unit.test_flags import T0, event, ref, sync

pytestmark = pytest.mark.integration

CODEC = EventCodec()


def alerts(bootstrap: str) -> list[dict[str, Any]]:
    """Every flag record on the alerts topic so far, decoded with the Flag contract."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        ALERTS, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=1500
    )
    try:
        records = []
        for message in consumer:
            schema, record = CODEC.decode_record(message.value)
            assert schema.name == "Flag"
            records.append(record)
        return records
    finally:
        consumer.close()


def publish(bootstrap: str, *events: dict[str, Any]) -> None:
    publisher = Publisher(bootstrap, connector="test")
    for e in events:
        publisher.publish(e)
    publisher.flush()
    publisher.producer.close()


def flags_of(worker: WorkerProcess, query: str) -> list[dict[str, Any]]:
    return worker.flags(query)


def test_failed_sync_opens_and_a_later_sync_resolves_it_on_api_and_alerts(broker, workers):
    worker = workers()
    publish(broker, sync(T0, citizen=3, ok=False))
    opened = wait_for(
        lambda: flags_of(worker, "type=SYNC_FAILED&status=OPEN"), 60, what="an open SYNC_FAILED"
    )
    assert [f["subject"] for f in opened] == [ref(3)]
    assert worker.kpis()["flags_open"] == 1

    publish(broker, sync(T0 + 3_600_000, citizen=3))
    wait_for(
        lambda: flags_of(worker, "type=SYNC_FAILED&status=RESOLVED"),
        60,
        what="SYNC_FAILED resolved",
    )
    announced = wait_for(
        lambda: (
            [a["status"] for a in alerts(broker) if a["type"] == "SYNC_FAILED"]
            == ["OPEN", "RESOLVED"]
        ),
        60,
        what="OPEN then RESOLVED on lienthong.alerts",
    )
    assert announced
    assert worker.kpis()["flags_open"] == 0


def test_silent_agency_is_flagged_once_and_resolved_when_heard_again(broker, tmp_path):
    worker = WorkerProcess(broker, tmp_path, "silence")
    worker.env["LIENTHONG_SLA_AGENCY_SILENT"] = str(3 / 3600)  # three seconds
    try:
        worker.start()
        heartbeat = event("ConnectorHeartbeat", T0, connector="labour-export", sent_total=0)
        heartbeat.update(source="LABOUR", ward_code="", citizen_ref="")
        publish(broker, heartbeat)
        silent = wait_for(
            lambda: flags_of(worker, "type=AGENCY_SILENT&status=OPEN"), 60, what="LABOUR silent"
        )
        assert [(f["agency"], f["subject"]) for f in silent] == [("LABOUR", "LABOUR")]

        again = dict(heartbeat, event_id=str(uuid.uuid4()), sent_total=1)
        publish(broker, again)
        wait_for(
            lambda: flags_of(worker, "type=AGENCY_SILENT&status=RESOLVED"),
            60,
            what="LABOUR heard again",
        )
        statuses = [a["status"] for a in alerts(broker) if a["type"] == "AGENCY_SILENT"]
        assert statuses[:2] == ["OPEN", "RESOLVED"]
    finally:
        worker.kill()
