"""Checks an event against its contract before it is encoded, with a clear reason.

Avro alone would accept a well-typed but meaningless event (an unknown ward, a
birth with no dossier id); these are the rules readers rely on beyond the types.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from schemas.errors import ContractError
from schemas.registry import SchemaRegistry, default_registry
from schemas.topics import SOURCE_OF_EVENT
from schemas.wards import ward_codes

Event = dict[str, Any]

ENVELOPE_FIELDS = (
    "event_id",
    "source",
    "occurred_at",
    "ward_code",
    "citizen_ref",
    "correlation_id",
)
_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
#: Chain starters and dossier steps cannot be joined without a dossier id.
NEEDS_CORRELATION = frozenset(
    {"BirthRegistered", "DeathRegistered", "ProcedureSubmitted", "ProcedureCompleted"}
)
#: 2000-01-01 .. 2100-01-01 in epoch ms: anything outside is a unit mistake.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000


def payload_fields(event_type: str, registry: SchemaRegistry | None = None) -> list[dict[str, Any]]:
    reg = registry or default_registry()
    return [f for f in reg.latest(event_type).schema["fields"] if f["name"] != "envelope"]


def _enum_symbols(field_type: Any) -> list[str] | None:
    if isinstance(field_type, dict) and field_type.get("type") == "enum":
        return list(field_type["symbols"])
    return None


def _check_time(event_type: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(name, "must be epoch milliseconds (integer)", event_type)
    if not _MIN_MS <= value < _MAX_MS:
        raise ContractError(name, f"{value} is not a plausible UTC millisecond time", event_type)


def validate(event: Event, registry: SchemaRegistry | None = None) -> Event:
    """Return the event if it honours its contract; raise ``ContractError`` otherwise."""
    reg = registry or default_registry()
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in reg.event_types:
        raise ContractError("event_type", f"unknown event type {event_type!r}")
    try:
        uuid.UUID(str(event.get("event_id")))
    except ValueError:
        raise ContractError("event_id", "must be a UUID", event_type) from None
    expected_source = SOURCE_OF_EVENT[event_type]
    source = event.get("source")
    if expected_source is not None and source != expected_source:
        raise ContractError("source", f"{event_type} is published by {expected_source}, not {source}", event_type)
    if source not in ("POLICE", "SOCIAL_INSURANCE", "HEALTH", "JUSTICE", "PORTAL", "LABOUR"):
        raise ContractError("source", f"unknown agency {source!r}", event_type)
    _check_time(event_type, "occurred_at", event.get("occurred_at"))
    heartbeat = event_type == "ConnectorHeartbeat"
    ward = event.get("ward_code")
    if not (heartbeat and ward == "") and ward not in ward_codes():
        raise ContractError("ward_code", f"{ward!r} is not a ward of Ho Chi Minh City", event_type)
    ref = event.get("citizen_ref")
    if not (heartbeat and ref == "") and not (isinstance(ref, str) and _PSEUDONYM.match(ref)):
        raise ContractError("citizen_ref", "must be a 64-hex HMAC-SHA256 pseudonym", event_type)
    corr = event.get("correlation_id")
    if corr is not None and (not isinstance(corr, str) or not corr.strip()):
        raise ContractError("correlation_id", "must be a non-empty string when given", event_type)
    if event_type in NEEDS_CORRELATION and corr is None:
        raise ContractError("correlation_id", f"is required for {event_type}", event_type)
    for f in payload_fields(event_type, reg):
        name = f["name"]
        if name not in event:
            if "default" in f:
                continue
            raise ContractError(name, "is required", event_type)
        value = event[name]
        symbols = _enum_symbols(f["type"])
        if symbols is not None:
            if value not in symbols:
                raise ContractError(name, f"{value!r} is not one of {', '.join(symbols)}", event_type)
        elif isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis":
            _check_time(event_type, name, value)
        elif f["type"] == "string" and (not isinstance(value, str) or not value):
            raise ContractError(name, "must be a non-empty string", event_type)
        elif f["type"] == "long" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ContractError(name, "must be a non-negative integer", event_type)
        elif f["type"] == "boolean" and not isinstance(value, bool):
            raise ContractError(name, "must be true or false", event_type)
    return event
