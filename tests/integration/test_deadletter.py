"""Bad input never stops a worker: garbage goes to the dead-letter topic, valid events still count."""

from __future__ import annotations

import random

import pytest

from schemas.topics import DEADLETTER, HEALTH
from tests.integration.test_flags import flags_of, publish
from tests.support import wait_for
from tests.unit.test_flags import T0, checkin

pytestmark = pytest.mark.integration

GARBAGE = 200


def test_random_bytes_are_dead_lettered_with_their_origin_and_valid_events_still_count(
    broker, workers
):
    from kafka import KafkaConsumer, KafkaProducer

    worker = workers()
    rng = random.Random(5)
    garbage = [rng.randbytes(rng.randrange(1, 300)) for _ in range(GARBAGE)]
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for i, value in enumerate(garbage):
        producer.send(HEALTH, key=f"k{i}".encode(), value=value)
    producer.flush()
    producer.close()
    publish(broker, *[checkin(T0 + i, citizen=i, found=True) for i in range(10)])

    kpis = wait_for(
        lambda: (k := worker.kpis())["checkins_by_id_card"] == 10 and k,
        90,
        what="valid events counted",
    )
    assert kpis["events_dead_lettered"] == GARBAGE

    consumer = KafkaConsumer(
        DEADLETTER, bootstrap_servers=broker, auto_offset_reset="earliest", consumer_timeout_ms=2000
    )
    dead = list(consumer)
    consumer.close()
    assert sorted(m.value for m in dead) == sorted(garbage)
    for message in dead:
        headers = dict(message.headers)
        assert headers["lienthong.source.topic"] == HEALTH.encode()
        assert headers["lienthong.reason"]
        assert int(headers["lienthong.source.partition"]) in range(8)
        assert int(headers["lienthong.source.offset"]) >= 0
    positions = {
        (dict(m.headers)["lienthong.source.partition"], dict(m.headers)["lienthong.source.offset"])
        for m in dead
    }
    assert len(positions) == GARBAGE


def test_dead_letters_are_tallied_as_contract_violations_not_one_flag_each(broker, workers):
    from kafka import KafkaProducer

    worker = workers()
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for i in range(60):
        producer.send(HEALTH, key=b"same-key", value=b"not avro %d" % i)
    producer.flush()
    producer.close()
    flags = wait_for(
        lambda: (
            (f := flags_of(worker, "type=CONTRACT_VIOLATION"))
            and "60 message" in f[0]["detail"]
            and f
        ),
        90,
        what="one CONTRACT_VIOLATION tally of 60",
    )
    assert len(flags) == 1 and flags[0]["agency"] == "HEALTH" and len(flags[0]["evidence"]) == 20
