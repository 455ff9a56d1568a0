"""The benchmark's workload: realistic city traffic, prepared and encoded once.

Events come from the simulator (every agency, chains, procedures, duplicates and
late events), are pseudonymised and validated exactly as an importer would, and
can be grouped into ``EventBatch`` messages per (topic, partition) the same way
:class:`connectors.sdk.Publisher` groups them, so the processor can be profiled
on the very messages a worker would read, without a broker.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from connectors.sdk import prepare
from connectors.simulation.city import generate_city
from schemas.codec import EventCodec
from schemas.contracts import TOPIC_OF_EVENT, partition_key
from schemas.partitioning import partition_for
from schemas.pseudonym import Pseudonymiser

#: 2024-06-01T00:00:00+07:00, the simulator's usual start.
START_MS = 1_717_174_800_000
BENCH_KEY = b"bench-pseudonym-key-0123456789abcdef"


def build_events(count: int, seed: int = 6, days: float | None = None) -> list[dict[str, Any]]:
    """``count`` valid events of a simulated city (about 10,000 a day of city time)."""
    span = days if days is not None else max(7.0, count / 10_000)
    pseudonymiser = Pseudonymiser(BENCH_KEY)
    return [prepare(raw, pseudonymiser) for raw in generate_city(seed, START_MS, span, count)]


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    value: bytes
    events: int


def encode_messages(
    events: list[dict[str, Any]], batch_size: int, partitions: int, codec: EventCodec | None = None
) -> list[Message]:
    """Messages as the batching Publisher would send them (in send order)."""
    codec = codec or EventCodec()
    pending: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    out: list[Message] = []
    for event in events:
        topic = TOPIC_OF_EVENT[event["event_type"]]
        partition = partition_for(partition_key(event), partitions)
        batch = pending[(topic, partition)]
        batch.append(codec.encode(event, check=False))
        if len(batch) >= batch_size:
            out.append(_flush(codec, topic, partition, pending.pop((topic, partition)), batch_size))
    for (topic, partition), batch in pending.items():
        out.append(_flush(codec, topic, partition, batch, batch_size))
    return out


def _flush(codec: EventCodec, topic: str, partition: int, batch: list[bytes], batch_size: int) -> Message:
    value = batch[0] if batch_size == 1 else codec.encode_batch(batch)
    return Message(topic, partition, value, len(batch))
