"""With a schema registry configured, the whole path speaks Confluent framing."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from tests.integration.test_walking_skeleton import write_id_cards
from tests.registry_stand_in import StandInRegistry
from tests.support import WorkerProcess, hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration


def test_imported_events_use_confluent_framing_and_are_counted(broker, tmp_path, stand_in: StandInRegistry):
    csv_path = tmp_path / "cards.csv"
    write_id_cards(csv_path, 60)
    env = hub_env(broker, tmp_path, LIENTHONG_SCHEMA_REGISTRY_URL=stand_in.url)
    result = run_cli("import", str(csv_path), "--agency", "POLICE", "--batch-size", "1", "--no-progress", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    consumer = KafkaConsumer("lienthong.identity", bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    values = [m.value for m in consumer]
    consumer.close()
    assert len(values) == 60
    assert all(v[0] == 0 for v in values), "magic byte 0 and a schema id, not the single-object marker"
    assert any(r.startswith("POST /subjects/") for r in stand_in.requests)
    worker = WorkerProcess(broker, tmp_path)
    worker.env["LIENTHONG_SCHEMA_REGISTRY_URL"] = stand_in.url
    worker.start()
    try:
        wait_for(lambda: worker.kpis()["id_cards_issued"] == 60, 90, what="60 Confluent-framed ID cards")
        assert worker.kpis()["events_dead_lettered"] == 0
    finally:
        worker.kill()
