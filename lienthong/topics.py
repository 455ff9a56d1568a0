"""Creates the hub's topics (idempotently) with kafka-python's admin client."""

from __future__ import annotations

import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS


def ensure_topics(bootstrap: str, partitions: int, topics: tuple[str, ...] = ALL_TOPICS, timeout: float = 30.0) -> None:
    """Create missing topics; all with the same partition count (co-partitioning)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lienthong-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def topic_partitions(bootstrap: str, topics: tuple[str, ...] = ALL_TOPICS) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lienthong-admin")
    try:
        return {d["topic"]: len(d["partitions"]) for d in admin.describe_topics(list(topics))}
    finally:
        admin.close()
