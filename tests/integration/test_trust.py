"""Proven senders and clean dead letters, against a real broker and a real worker process.

Messages are produced the way an agency publishing straight to Kafka would (its own
producer, its own headers), so every refusal is exercised on the wire.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from schemas.codec import EventCodec
from schemas.contracts import TOPIC_OF_EVENT
from schemas.topics import ALERTS, DEADLETTER, WELFARE
from tests.integration.test_flags import flags_of
from tests.support import TEST_PSEUDONYM_KEY, TEST_SIGNING_KEYS, wait_for
from tests.trust_samples import KEYRING, ids_in, planted, sample_event, signed_headers, text_has_id

pytestmark = pytest.mark.integration

CODEC = EventCodec()


def read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000)
    try:
        return list(consumer)
    finally:
        consumer.close()


def produce(bootstrap: str, messages: list[tuple[str, bytes, list[tuple[str, bytes]] | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, (topic, value, headers) in enumerate(messages):
        producer.send(topic, key=f"k{i % 3}".encode(), value=value, headers=headers)
    producer.flush()
    producer.close()


def with_header(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in headers]


def test_only_proven_messages_count_and_each_refusal_says_why(broker, workers):
    worker = workers()
    assert worker.get("/healthz")["signature_verification"] == "on"
    good = [CODEC.encode(sample_event("WelfarePaid", i)) for i in range(6)]
    forged = CODEC.encode(sample_event("WelfarePaid", 100))
    signed = signed_headers("LABOUR", forged)
    messages = [
        (WELFARE, good[0], signed_headers("LABOUR", good[0])),
        (WELFARE, forged, None),
        (WELFARE, good[1], signed_headers("LABOUR", good[1])),
        (WELFARE, forged, with_header(signed, "lienthong.signature", b"f" * 64)),
        (WELFARE, good[2], KEYRING.keys["labour-test-1"].headers(good[2])),
        (WELFARE, forged, with_header(signed, "lienthong.key_id", b"labour-stolen")),
        (WELFARE, good[3], signed_headers("LABOUR", good[3])),
        (WELFARE, forged, signed_headers("POLICE", forged)),
        (WELFARE, good[4], signed_headers("LABOUR", good[4])),
        (WELFARE, forged, with_header(signed, "lienthong.agency", b"POLICE")),
        (WELFARE, good[5], signed_headers("LABOUR", good[5])),
    ]
    produce(broker, messages)
    kpis = wait_for(lambda: (k := worker.kpis())["events_dead_lettered"] == 5 and k, 90, what="five refusals")
    assert kpis["welfare_payments"] == 6
    reasons = sorted(dict(m.headers)["lienthong.reason"].decode() for m in read_all(broker, DEADLETTER))
    assert any("unsigned message" in r for r in reasons)
    assert any("wrong signature" in r for r in reasons)
    assert any("unknown key id 'labour-stolen'" in r for r in reasons)
    assert any("signed by POLICE, not LABOUR" in r for r in reasons)
    assert any("belongs to LABOUR" in r for r in reasons)
    [flag] = wait_for(lambda: flags_of(worker, "type=CONTRACT_VIOLATION"), 30, what="a CONTRACT_VIOLATION flag")
    assert flag["agency"] == "LABOUR"


def test_no_raw_id_number_reaches_a_dead_letter_an_alert_an_api_answer_or_the_worker_log(broker, workers):
    worker = workers()
    messages: list[tuple[str, bytes, list[tuple[str, bytes]] | None]] = []
    for i, (event_type, _, value) in enumerate(planted(CODEC)):
        agency = sample_event(event_type)["source"]
        topic = TOPIC_OF_EVENT[event_type]
        batch = CODEC.encode_batch([CODEC.encode(sample_event(event_type, 1000 + i)), value])
        messages.append((topic, value, signed_headers(agency, value)))
        messages.append((topic, batch, signed_headers(agency, batch)))
    produce(broker, messages)
    wait_for(lambda: worker.kpis()["events_dead_lettered"] == len(messages), 120, what="every planted ID refused")
    dead = read_all(broker, DEADLETTER)
    assert len(dead) == len(messages)
    for message in dead:
        assert not ids_in(message.value), message.value
        for name, header in message.headers:
            assert not ids_in(header), (name, header)
        assert int(dict(message.headers)["lienthong.redacted"]) >= 1
    for message in read_all(broker, ALERTS):
        assert not ids_in(message.value)
    for path in ("/api/flags", "/api/kpis", "/api/agencies", "/healthz"):
        assert not text_has_id(str(worker.get(path))), path
    log = worker.log_path.read_text()
    assert not ids_in(log.encode())
    secrets = [TEST_PSEUDONYM_KEY, *(k["secret"] for k in TEST_SIGNING_KEYS.values())]
    assert not any(secret in log or secret in str(worker.get("/healthz")) for secret in secrets)


def test_turning_verification_off_is_explicit_and_reported_by_healthz_and_status(broker, tmp_path):
    from tests.support import WorkerProcess, hub_env, run_cli

    worker = WorkerProcess(broker, tmp_path, "unverified")
    worker.env["LIENTHONG_VERIFY_SIGNATURES"] = "false"
    try:
        worker.start()
        assert worker.get("/healthz")["signature_verification"] == "off"
        unsigned = CODEC.encode(sample_event("WelfarePaid", 1))
        produce(broker, [(WELFARE, unsigned, None)])
        wait_for(lambda: worker.kpis()["welfare_payments"] == 1, 60, what="the unsigned payment counted")
        status = run_cli("status", "--url", worker.url, env=hub_env(broker, tmp_path))
        assert "signature verification: off" in status.stdout
        assert "signature_verification_off" in worker.log_path.read_text()
    finally:
        worker.kill()


def test_a_worker_without_signing_keys_refuses_to_start_unless_verification_is_off(broker, tmp_path):
    from tests.support import hub_env, run_cli

    env = hub_env(broker, tmp_path)
    del env["LIENTHONG_SIGNING_KEYS"]
    refused = run_cli("worker", env=env, timeout=60)
    assert refused.returncode == 2
    assert "LIENTHONG_SIGNING_KEYS" in refused.stderr and "LIENTHONG_VERIFY_SIGNATURES=false" in refused.stderr
