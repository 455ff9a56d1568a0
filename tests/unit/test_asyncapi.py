"""The generated AsyncAPI document: valid AsyncAPI 3, complete, and what is committed.

Validity is checked against the official AsyncAPI 3.0.0 JSON Schema, vendored
from the ``@asyncapi/specs`` npm package 6.11.1 (Apache-2.0), file
``schemas/3.0.0-without-$id.json``, minified, in ``tests/unit/data``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from schemas.asyncapi import AVRO_FORMAT, DEADLETTER_HEADERS, build_asyncapi, render
from schemas.contracts import TOPIC_OF_EVENT
from schemas.errors import ContractError
from schemas.registry import default_registry
from schemas.topics import ALERTS, ALL_TOPICS, DEADLETTER

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
SPEC = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text())
DOC = build_asyncapi()


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SPEC)
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_document_is_valid_against_the_official_asyncapi_3_schema() -> None:
    assert _errors(DOC) == []


def test_the_official_schema_refuses_a_broken_document() -> None:
    broken = copy.deepcopy(DOC)
    broken["operations"]["consume_identity"]["action"] = "subscribe"  # AsyncAPI 2 wording
    assert _errors(broken)


def test_every_ref_resolves() -> None:
    refs = _refs(DOC)
    assert refs
    for ref in refs:
        _resolve(DOC, ref)


def test_every_topic_has_a_channel_at_its_address() -> None:
    assert sorted(c["address"] for c in DOC["channels"].values()) == sorted(ALL_TOPICS)


def test_every_event_type_is_a_message_on_its_topic_with_its_avro_schema() -> None:
    by_address = {c["address"]: c for c in DOC["channels"].values()}
    for event_type, topic in TOPIC_OF_EVENT.items():
        ref = by_address[topic]["messages"][event_type]["$ref"]
        payload = _resolve(DOC, ref)["payload"]
        assert payload["schemaFormat"] == AVRO_FORMAT
        assert payload["schema"] == default_registry().latest(event_type).schema


def test_alerts_carry_the_flag_schema() -> None:
    channel = next(c for c in DOC["channels"].values() if c["address"] == ALERTS)
    flag = _resolve(DOC, channel["messages"]["Flag"]["$ref"])
    assert flag["payload"]["schema"]["name"] == "Flag"


def test_dead_letter_headers_are_the_ones_the_worker_sends() -> None:
    from schemas.signing import Proof
    from streams.processor import DeadLetter

    where = SimpleNamespace(topic="lienthong.identity", partition=0, offset=1, timestamp=0)
    dead = DeadLetter(b"x", ContractError("ward_code", "bad"), where, batch_index=0,  # type: ignore[arg-type]
                      proof=Proof("POLICE", "police-1"))
    channel = next(c for c in DOC["channels"].values() if c["address"] == DEADLETTER)
    headers = _resolve(DOC, channel["messages"]["DeadLetter"]["$ref"])["headers"]
    assert {name for name, _ in dead.headers()} == set(headers["properties"]) == set(DEADLETTER_HEADERS)


@pytest.mark.parametrize("operation", ["publish_identity", "consume_welfare"])
def test_operation_messages_point_into_their_channel(operation: str) -> None:
    op = DOC["operations"][operation]
    channel_ref = op["channel"]["$ref"]
    assert all(m["$ref"].startswith(channel_ref + "/messages/") for m in op["messages"])


def test_committed_document_equals_a_fresh_generation() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(build_asyncapi()), (
        "docs/asyncapi.json is stale: run `lienthong schemas docs`"
    )
