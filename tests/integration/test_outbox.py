"""The outbox poller against the real PostgreSQL and the real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer
from psycopg import sql
from psycopg.types.json import Jsonb

from connectors.outbox import OutboxPoller, ensure_outbox, outbox_event_id, run_outbox
from connectors.sdk import Publisher
from hubbase.settings import Settings
from schemas.codec import EventCodec
from schemas.pseudonym import Pseudonymiser
from schemas.wards import ward_codes
from tests.support import ROOT, hub_env, wait_for

pytestmark = pytest.mark.integration

DSN = "postgresql://postgres@127.0.0.1:5432/test"
KEY = "test-key-0123456789abcdef"
WARD = min(ward_codes())
#: One citizen for every row: one partition, so the topic's order is the publish order.
CITIZEN = "079204001234"


def id_card(hour: int, **changes: Any) -> dict[str, Any]:
    payload = {"occurred_at": f"2024-06-01T{hour % 24:02d}:00:00+07:00", "ward_code": WARD,
               "citizen_id": CITIZEN, "card_kind": "CCCD_CHIP"}
    payload.update(changes)
    return payload


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(DSN, autocommit=True) as connection:
        yield connection


@pytest.fixture
def table(conn: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"outbox_test_{uuid.uuid4().hex[:10]}"
    ensure_outbox(conn, name)
    yield name
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def settings(broker: str, tmp_path: Path) -> Settings:
    return Settings.from_env().with_(broker=broker, pseudonym_key=KEY, data_dir=tmp_path)


def insert(conn: psycopg.Connection[Any], table: str, payloads: list[dict[str, Any]],
           event_type: str = "IdCardIssued") -> list[int]:
    query = sql.SQL("INSERT INTO {} (event_type, payload) VALUES (%s, %s) RETURNING id").format(sql.Identifier(table))
    return [conn.execute(query, (event_type, Jsonb(p))).fetchone()[0] for p in payloads]


def rows(conn: psycopg.Connection[Any], table: str) -> list[tuple[int, bool, str | None]]:
    query = sql.SQL("SELECT id, sent_at IS NOT NULL, error FROM {} ORDER BY id").format(sql.Identifier(table))
    return [tuple(r) for r in conn.execute(query).fetchall()]


def topic_events(bootstrap: str, topic: str = "lienthong.identity") -> list[dict[str, Any]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    codec = EventCodec()
    try:
        return [event for message in consumer for event in codec.decode_message(message.value)]
    finally:
        consumer.close()


def drain_once(settings: Settings, table: str) -> None:
    run_outbox(settings, dsn=DSN, agency="POLICE", table=table, interval=0.1, once=True)


def expected_ids(table: str, ids: list[int]) -> list[str]:
    return [outbox_event_id("POLICE", "test", table, row_id) for row_id in ids]


class CrashAfterPublish(Publisher):
    """Publishes and waits for the broker's acknowledgement, then dies before the rows are marked."""

    def flush(self, timeout: float = 60.0) -> None:
        super().flush(timeout)
        raise KeyboardInterrupt("killed between publish and mark")


def test_rows_are_published_in_id_order_and_marked_sent(settings, conn, table, broker):
    ids = insert(conn, table, [id_card(h) for h in range(12)])
    drain_once(settings, table)
    assert [e["event_id"] for e in topic_events(broker)] == expected_ids(table, ids)
    assert rows(conn, table) == [(row_id, True, None) for row_id in ids]


def test_raw_citizen_id_is_pseudonymised_on_publish(settings, conn, table, broker):
    insert(conn, table, [id_card(9)])
    drain_once(settings, table)
    [event] = topic_events(broker)
    assert event["citizen_ref"] == Pseudonymiser(KEY.encode()).ref(CITIZEN)


def test_second_run_publishes_nothing_again(settings, conn, table, broker):
    insert(conn, table, [id_card(h) for h in range(5)])
    drain_once(settings, table)
    drain_once(settings, table)
    assert len(topic_events(broker)) == 5


def crash_after_publish(broker: str, conn: psycopg.Connection[Any], table: str) -> None:
    """One poll that publishes every row, gets the acknowledgement, and dies before marking them."""
    crashing = CrashAfterPublish(broker, connector="outbox-police")
    poller = OutboxPoller(conn, crashing, agency="POLICE", table=table,
                          pseudonymiser=Pseudonymiser(KEY.encode()))
    try:
        with pytest.raises(KeyboardInterrupt):
            poller.drain_batch()
    finally:
        crashing.producer.close()


def test_crash_between_publish_and_mark_leaves_the_rows_unsent(conn, table, broker):
    insert(conn, table, [id_card(h) for h in range(6)])
    crash_after_publish(broker, conn, table)
    assert len(topic_events(broker)) == 6, "the crashing poll should have published"
    assert not any(sent for _, sent, _ in rows(conn, table))


def test_rows_republished_after_a_crash_carry_the_same_event_ids(settings, conn, table, broker):
    ids = insert(conn, table, [id_card(h) for h in range(6)])
    crash_after_publish(broker, conn, table)
    drain_once(settings, table)
    assert [e["event_id"] for e in topic_events(broker)] == expected_ids(table, ids) * 2
    assert all(sent for _, sent, _ in rows(conn, table))


def test_hub_counts_rows_republished_after_a_crash_once(settings, conn, table, broker, workers):
    worker = workers()
    insert(conn, table, [id_card(h) for h in range(6)])
    crash_after_publish(broker, conn, table)
    drain_once(settings, table)
    kpis = wait_for(lambda: (k := worker.kpis())["events_duplicate"] == 6 and k, 90, what="6 duplicates")
    assert kpis["id_cards_issued"] == 6


def test_invalid_row_is_marked_with_its_error_and_the_rest_go_through(settings, conn, table, broker):
    ids = insert(conn, table, [id_card(1), id_card(2, card_kind="PAPER"), id_card(3)])
    drain_once(settings, table)
    assert [e["event_id"] for e in topic_events(broker)] == expected_ids(table, [ids[0], ids[2]])
    good, bad, good2 = rows(conn, table)
    assert good[1] and good2[1]
    assert bad[1] is False and bad[2].startswith("card_kind: 'PAPER' is not one of")


def test_another_agencys_event_type_is_marked_not_published(settings, conn, table, broker):
    insert(conn, table, [{"occurred_at": "2024-06-01T08:00:00Z", "ward_code": WARD,
                                     "citizen_id": CITIZEN, "facility_code": "79001",
                                     "insurance_lookup": "FOUND"}], event_type="MedicalCheckIn")
    drain_once(settings, table)
    [(_, sent, error)] = rows(conn, table)
    assert not sent and error.startswith("event_type: MedicalCheckIn is published by HEALTH")


def test_poller_command_publishes_new_rows_and_stops_cleanly_on_sigterm(conn, table, broker, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lienthong", "outbox", "--dsn", DSN, "--agency", "POLICE", "--table", table,
         "--interval", "0.2"],
        env=hub_env(broker, tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        ids = insert(conn, table, [id_card(h) for h in range(3)])
        wait_for(lambda: all(sent for _, sent, _ in rows(conn, table)), 60, what="the rows to be sent")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert b'"outbox_stopped"' in output
    assert [e["event_id"] for e in topic_events(broker)] == expected_ids(table, ids)


def test_second_poller_on_a_table_with_an_active_poller_publishes_nothing(settings, conn, table, broker):
    import click

    insert(conn, table, [id_card(1)])
    with psycopg.connect(DSN, autocommit=True) as leader_conn:
        leader = OutboxPoller(leader_conn, None, agency="POLICE", table=table,  # type: ignore[arg-type]
                              pseudonymiser=Pseudonymiser(KEY.encode()))
        assert leader.try_lead()
        with pytest.raises(click.ClickException, match="another poller"):
            drain_once(settings, table)
    assert topic_events(broker) == []
    drain_once(settings, table)  # the leader's connection ended: the standby takes over
    assert len(topic_events(broker)) == 1
