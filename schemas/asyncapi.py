"""An AsyncAPI 3.0 document of the hub, generated from the contracts themselves.

Generated, never hand-written, so it cannot drift from ``schemas/topics.py`` and
the ``.avsc`` files: a test regenerates it and compares with the committed
``docs/asyncapi.json``. Agencies integrating straight with Kafka read it to learn
which topic carries which event, and with which Avro schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.contracts import SOURCE_OF_EVENT, TOPIC_OF_EVENT
from schemas.registry import SchemaRegistry, SchemaVersion, default_registry
from schemas.topics import AGGREGATES, ALERTS, AUDIT, DEADLETTER, EVENT_TOPICS

ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
AVRO_CONTENT = "application/vnd.apache.avro"
KAFKA_BINDING = "0.5.0"

#: Headers the worker puts on every dead letter (``streams.processor.DeadLetter``).
DEADLETTER_HEADERS: dict[str, str] = {
    "lienthong.reason": "Why the message was refused: '<EventType>.<field>: <reason>'.",
    "lienthong.field": "The field at fault.",
    "lienthong.source.topic": "Topic the message was read from.",
    "lienthong.source.partition": "Its partition.",
    "lienthong.source.offset": "Its offset.",
    "lienthong.source.batch_index": "Index of the refused event inside an EventBatch, when only one item was bad.",
    "lienthong.redacted": "How many values shaped like a personal ID number were replaced (pseudonym or mask).",
    "lienthong.source.agency": "The agency whose signature on the message was good (absent when it was not).",
    "lienthong.source.key_id": "The key id of that signature.",
}

#: Headers every agency message carries (``schemas.signing``).
SIGNING_HEADERS: dict[str, str] = {
    "lienthong.agency": "The publishing agency.",
    "lienthong.key_id": "Id of the agency key that signed the value.",
    "lienthong.signature": "Hex HMAC-SHA256 of the exact value bytes with that key.",
}

#: One record of ``lienthong.audit`` (``streams.audit``), as JSON Schema.
AUDIT_RECORD: dict[str, Any] = {
    "type": "object",
    "required": ["chain", "agency", "key_id", "topic", "partition", "offset", "value_sha256", "time", "events",
                 "prev", "hash"],
    "properties": {
        "chain": {"type": "string", "description": "'<topic>:<partition>': one hash chain per source partition."},
        "agency": {"type": "string"},
        "key_id": {"type": "string", "description": "Key that signed the message ('' if verification was off)."},
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
        "value_sha256": {"type": "string", "description": "SHA-256 (hex) of the message value."},
        "time": {"type": "integer", "description": "Kafka time of the message, UTC milliseconds."},
        "events": {"type": "integer", "description": "Events the message held that were accepted."},
        "prev": {"type": "string", "description": "hash of the chain's previous record (64 zeros first)."},
        "hash": {"type": "string", "description": "SHA-256 of the other fields as sorted compact JSON."},
    },
}

_TOPIC_DOCS: dict[str, str] = {
    DEADLETTER: "Anything refused, unchanged, with the reason in headers.",
    ALERTS: "Data-sharing failures (flags) as they open and resolve; keyed by flag id.",
    AGGREGATES: "Counter snapshots per partition for dashboards (JSON); keyed by partition.",
    AUDIT: "Hash-chained record of every accepted message (JSON, no personal data); never compacted.",
}

#: Shape of an aggregates snapshot (``streams.view.snapshot_of``), as JSON Schema.
AGGREGATE_SNAPSHOT: dict[str, Any] = {
    "type": "object",
    "required": ["partition", "worker", "seq", "version", "as_of", "counters", "flags", "agencies"],
    "properties": {
        "partition": {"type": "integer", "description": "Partition the counters are for."},
        "worker": {"type": "string", "description": "Worker that owned the partition."},
        "seq": {"type": "integer", "description": "Snapshot sequence; readers keep the highest."},
        "version": {"type": "integer"},
        "as_of": {"type": "integer", "description": "Wall-clock UTC milliseconds of the snapshot."},
        "applied": {"type": "object", "description": "Offsets applied per source topic."},
        "watermark": {"type": "integer", "description": "Event-time watermark, UTC milliseconds."},
        "counters": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "Counter name (metric, ward, local day) to count.",
        },
        "flags": {"type": "array", "items": {"type": "object"}, "description": "Flags of the partition."},
        "agencies": {"type": "object", "description": "Last event and heartbeat seen per agency."},
    },
}


def _channel_id(topic: str) -> str:
    return topic.removeprefix("lienthong.").replace("-", "_")


def _avro_message(sv: SchemaVersion, versions: list[SchemaVersion], summary: str) -> dict[str, Any]:
    return {
        "name": sv.name,
        "title": sv.name,
        "summary": summary,
        "contentType": AVRO_CONTENT,
        "description": (
            "Avro single-object encoding (C3 01, 8-byte little-endian CRC-64-AVRO fingerprint, body); "
            "Confluent framing (00, 4-byte schema id) where a schema registry is configured."
        ),
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": sv.schema},
        "headers": {
            "type": "object",
            "required": list(SIGNING_HEADERS),
            "properties": {k: {"type": "string", "description": v} for k, v in SIGNING_HEADERS.items()},
        },
        "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": KAFKA_BINDING}},
        "x-lienthong-versions": [
            {"version": v.version, "fingerprint": v.fingerprint.hex(), "file": f"{v.name}/{v.path.name}"}
            for v in versions
        ],
    }


def _summary(event_type: str) -> str:
    source = SOURCE_OF_EVENT.get(event_type)
    return f"Published by {source}." if source else "Published by any agency's connector."


def build_asyncapi(registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """The document as a dict; deterministic (no timestamps), so it can be compared."""
    reg = registry or default_registry()
    messages: dict[str, Any] = {}
    for name in sorted(reg.event_types):
        messages[name] = _avro_message(reg.latest(name), reg.versions[name], _summary(name))
    messages["EventBatch"] = _avro_message(
        reg.latest("EventBatch"), reg.versions["EventBatch"],
        "Several events bound for one partition in one message; any event topic may carry it.",
    )
    messages["Flag"] = _avro_message(reg.latest("Flag"), reg.versions["Flag"], "A flag opening or resolving.")
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A refused message as it arrived, with values shaped like a personal ID number replaced.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": ["lienthong.reason", "lienthong.field", "lienthong.source.topic",
                         "lienthong.source.partition", "lienthong.source.offset"],
            "properties": {k: {"type": "string", "description": v} for k, v in DEADLETTER_HEADERS.items()},
        },
        "payload": {"type": "string", "format": "binary", "description": "The original message value."},
    }
    messages["AuditRecord"] = {
        "name": "AuditRecord",
        "title": "Audit record",
        "summary": "Who sent which message: one link of a hash chain.",
        "contentType": "application/json",
        "payload": AUDIT_RECORD,
    }
    messages["AggregateSnapshot"] = {
        "name": "AggregateSnapshot",
        "title": "Aggregate snapshot",
        "summary": "Counters, flags and agency status of one partition.",
        "contentType": "application/json",
        "payload": AGGREGATE_SNAPSHOT,
    }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def add(topic: str, names: list[str], description: str, send: bool) -> None:
        cid = _channel_id(topic)
        channels[cid] = {
            "address": topic,
            "description": description,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        refs = [{"$ref": f"#/channels/{cid}/messages/{n}"} for n in names]
        if send:
            operations[f"publish_{cid}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{cid}"},
                "summary": f"Agencies publish to {topic}.", "messages": refs,
            }
        operations[f"consume_{cid}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Read {topic}.", "messages": refs,
        }

    for topic in EVENT_TOPICS:
        names = sorted(t for t, tt in TOPIC_OF_EVENT.items() if tt == topic)
        add(topic, [*names, "EventBatch"], f"Events: {', '.join(names)}.", send=True)
    add(DEADLETTER, ["DeadLetter"], _TOPIC_DOCS[DEADLETTER], send=False)
    add(ALERTS, ["Flag"], _TOPIC_DOCS[ALERTS], send=False)
    add(AGGREGATES, ["AggregateSnapshot"], _TOPIC_DOCS[AGGREGATES], send=False)
    add(AUDIT, ["AuditRecord"], _TOPIC_DOCS[AUDIT], send=False)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "lienthong",
            "version": "1.0.0",
            "description": (
                "Event-driven integration hub between Ho Chi Minh City agencies. Events carry an "
                "envelope (event_id, source, occurred_at, ward_code, citizen_ref, correlation_id); "
                "citizen_ref is a keyed HMAC-SHA256 pseudonym, never the personal ID number. "
                "Generated by `lienthong schemas docs`; do not edit."
            ),
        },
        "defaultContentType": AVRO_CONTENT,
        "servers": {
            "production": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "The hub's Kafka cluster (docker-compose.yml).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_asyncapi(path: Path) -> None:
    """Write the document to ``path`` (``lienthong schemas docs --out``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(build_asyncapi()), encoding="utf-8")
