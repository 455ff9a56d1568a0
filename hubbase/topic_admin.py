"""The hub's topics: created (idempotently) and checked with kafka-python's admin client.

Every hub topic has the same partition count (co-partitioning, see
``docs/exactly-once.md`` §1). A topic auto-created by a client that reached the
broker first has the broker's default count instead, and a worker cannot join
over it; :func:`partition_mismatches` finds that, and :func:`mismatch_message`
says how to fix it in one line.
"""

from __future__ import annotations

import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from hubbase.kafka_security import kafka_python_config
from schemas.topics import ALL_TOPICS, HUB_TOPICS, TOPIC_CONFIGS


def ensure_topics(bootstrap: str, partitions: int, topics: tuple[str, ...] = HUB_TOPICS, timeout: float = 30.0,
                  configs: dict[str, dict[str, str]] | None = None) -> None:
    """Create missing topics; all with the same partition count (co-partitioning).

    ``configs``: topic configs by topic, over the hub's own (``TOPIC_CONFIGS``).
    """
    configs = {**TOPIC_CONFIGS, **(configs or {})}
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lienthong-admin", **kafka_python_config())
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, 1, topic_configs=configs.get(t, {})) for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def topic_partitions(
    bootstrap: str, topics: tuple[str, ...] = ALL_TOPICS, client_id: str = "lienthong-admin"
) -> dict[str, int]:
    """Partition count of each of ``topics`` that exists (raises if the broker is unreachable)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, request_timeout_ms=5000,
                             **kafka_python_config())
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = admin.describe_topics(wanted) if wanted else []
        # kafka-python 2.0 names the topic "topic", later versions "name"
        return {d.get("topic") or d["name"]: len(d["partitions"]) for d in described}
    finally:
        admin.close()


def partition_mismatches(counts: dict[str, int], expected: int) -> dict[str, int]:
    """Hub topics whose partition count is not ``expected``, with their count."""
    return {topic: n for topic, n in counts.items() if topic in HUB_TOPICS and n != expected}


def mismatch_message(mismatches: dict[str, int], expected: int) -> str:
    """One line an operator can act on: which topics, their count, the expected one, the fix."""
    topics = ", ".join(f"{topic} has {n} partitions" for topic, n in sorted(mismatches.items()))
    return (
        f"{topics}; every hub topic needs {expected} (LIENTHONG_PARTITIONS). A client probably "
        f"auto-created it before the hub did. Fix: delete it (kafka-topics.sh --delete --topic NAME) "
        f"and start the worker again, which creates it with {expected}, then re-publish what it held; "
        f"or set LIENTHONG_PARTITIONS to the count every hub topic has."
    )
