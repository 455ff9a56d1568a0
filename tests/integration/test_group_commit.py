"""Group commit on a real worker (issue 16): single-event messages committed in groups stay exact
when a worker dies between writing a group and acking it, and a poison message inside a group
is dead-lettered alone."""

from __future__ import annotations

import pytest

from schemas.topics import DEADLETTER, IDENTITY
from tests.integration.test_exactness import (
    city_events,
    processed_messages,
    publish,
    truth,
    wait_exact,
)
from tests.support import get_json

pytestmark = pytest.mark.integration


def groups_of(worker) -> int:  # type: ignore[no-untyped-def]
    return int(get_json(f"{worker.url}/healthz")["groups"])


def test_a_backlog_of_single_event_messages_is_committed_in_groups(broker, workers):
    events = city_events(3000, seed=21)
    publish(broker, events, batch_size=1)  # the backlog is there before the worker
    worker = workers()
    wait_exact(worker, truth(events))
    assert processed_messages(worker) == 3000
    assert groups_of(worker) * 5 < 3000, "a backlog of small messages should make groups of many"


@pytest.mark.parametrize("state", ["memory", "disk"])
def test_a_worker_that_dies_after_writing_a_group_and_before_acking_it_ends_exact(broker, workers, state):
    events = city_events(4000, seed=22, duplicates=200)
    publish(broker, events, batch_size=1)
    env = {"LIENTHONG_STATE_STORE": "disk"} if state == "disk" else {}
    # exits right after the group holding its 1,500th message is written and flushed:
    # nothing of that group acked, its side effects not sent
    doomed = workers(name="doomed", wait=False, LIENTHONG_FAULT="exit_after_delta@1500", **env)
    assert doomed.process is not None
    doomed.process.wait(timeout=180)
    worker = workers(name="doomed", **env)  # same data dir: the replay is skipped by the fence
    wait_exact(worker, truth(events))


def test_a_poison_message_inside_a_group_is_dead_lettered_and_the_rest_of_the_group_counts(broker, workers):
    from kafka import KafkaConsumer, KafkaProducer

    events = city_events(2000, seed=23)
    publish(broker, events[:1000], batch_size=1)
    poison = [b"\xc3\x01poison %d" % i for i in range(16)]
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for i, value in enumerate(poison):
        producer.send(IDENTITY, key=b"poison-%d" % i, value=value, partition=i % 8)
    producer.flush()
    producer.close()
    publish(broker, events[1000:], batch_size=1)
    worker = workers()
    wait_exact(worker, truth(events))
    assert groups_of(worker) * 5 < processed_messages(worker)  # the poison sat inside groups
    assert worker.kpis()["events_dead_lettered"] == len(poison)
    consumer = KafkaConsumer(DEADLETTER, bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    dead = {m.key: m.value for m in consumer}
    consumer.close()
    # each dead letter keyed as its own source message, not as the group's last
    assert dead == {b"poison-%d" % i: value for i, value in enumerate(poison)}
