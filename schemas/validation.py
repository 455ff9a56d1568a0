"""Checks an event against its contract before it is encoded, with a clear reason.

Avro alone would accept a well-typed but meaningless event (an unknown ward, a
birth with no dossier id); these are the rules readers rely on beyond the types.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from weakref import WeakKeyDictionary

from schemas.contracts import NEEDS_CORRELATION, NOT_ABOUT_A_CITIZEN, SOURCE_OF_EVENT
from schemas.errors import ContractError
from schemas.personal_ids import has_id
from schemas.registry import SchemaRegistry, default_registry
from schemas.vocabulary import AGENCIES
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
#: The canonical UUID text, which ``uuid.UUID`` always accepts: checked by one
#: regex match; any other spelling still goes through ``uuid.UUID``.
_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_AGENCIES = frozenset(AGENCIES)
#: 2000-01-01 .. 2100-01-01 in epoch ms: anything outside is a unit mistake.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000
#: A free-text field may not carry a personal ID number: it would enter a topic in clear.
_HOLDS_ID = "holds a value shaped like a personal ID number (12 digits); send it only as citizen_id"
_id_search = has_id
#: The city's ward codes (a fixed list from ``vietnam-provinces``), bound once.
_WARDS = ward_codes()


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


#: Payload checks per event type, compiled once per registry (the hot path of
#: every worker): (name, has default, kind, enum symbols) in schema field order.
_Check = tuple[str, bool, str, "frozenset[str] | None", str]
_PLANS: WeakKeyDictionary[SchemaRegistry, dict[str, list[_Check]]] = WeakKeyDictionary()


#: The last registry's plans: every worker validates against one registry, and a
#: ``WeakKeyDictionary`` lookup per event costs more than the checks it selects.
_LAST: tuple[SchemaRegistry | None, dict[str, list[_Check]]] = (None, {})


def _plans(reg: SchemaRegistry) -> dict[str, list[_Check]]:
    global _LAST
    last_reg, last_plans = _LAST
    if reg is last_reg:
        return last_plans
    plans = _PLANS.get(reg)
    if plans is None:
        plans = {}
        for name in reg.event_types:
            checks: list[_Check] = []
            for f in payload_fields(name, reg):
                symbols = _enum_symbols(f["type"])
                if symbols is not None:
                    kind = "enum"
                elif isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis":
                    kind = "time"
                elif f["type"] in ("string", "long", "boolean"):
                    kind = f["type"]
                else:
                    kind = "any"
                checks.append((f["name"], "default" in f, kind,
                               None if symbols is None else frozenset(symbols),
                               "" if symbols is None else ", ".join(symbols)))
            plans[name] = checks
        _PLANS[reg] = plans
    _LAST = (reg, plans)
    return plans


def validate(event: Event, registry: SchemaRegistry | None = None) -> Event:
    """Return the event if it honours its contract; raise ``ContractError`` otherwise."""
    reg = registry or default_registry()
    plans = _plans(reg)
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in plans:
        raise ContractError("event_type", f"unknown event type {event_type!r}")
    event_id = event.get("event_id")
    if not (isinstance(event_id, str) and _CANONICAL_UUID.match(event_id)):
        try:
            uuid.UUID(str(event_id))
        except ValueError:
            raise ContractError("event_id", "must be a UUID", event_type) from None
    expected_source = SOURCE_OF_EVENT[event_type]
    source = event.get("source")
    if expected_source is not None and source != expected_source:
        raise ContractError("source", f"{event_type} is published by {expected_source}, not {source}", event_type)
    if source not in _AGENCIES:
        raise ContractError("source", f"unknown agency {source!r}", event_type)
    occurred_at = event.get("occurred_at")
    if type(occurred_at) is not int or not _MIN_MS <= occurred_at < _MAX_MS:  # the common case in one test
        _check_time(event_type, "occurred_at", occurred_at)
    heartbeat = event_type in NOT_ABOUT_A_CITIZEN  # a connector's heartbeat: no ward, no citizen
    ward = event.get("ward_code")
    if ward not in _WARDS and not (heartbeat and ward == ""):
        raise ContractError("ward_code", f"{ward!r} is not a ward of Ho Chi Minh City", event_type)
    ref = event.get("citizen_ref")
    if not (heartbeat and ref == "") and not (isinstance(ref, str) and _PSEUDONYM.match(ref)):
        raise ContractError("citizen_ref", "must be a 64-hex HMAC-SHA256 pseudonym", event_type)
    corr = event.get("correlation_id")
    if corr is not None and (not isinstance(corr, str) or not corr.strip()):
        raise ContractError("correlation_id", "must be a non-empty string when given", event_type)
    if corr is not None and _id_search(corr):
        raise ContractError("correlation_id", _HOLDS_ID, event_type)
    if event_type in NEEDS_CORRELATION and corr is None:
        raise ContractError("correlation_id", f"is required for {event_type}", event_type)
    for name, has_default, kind, symbols, symbols_text in plans[event_type]:
        if name not in event:
            if has_default:
                continue
            raise ContractError(name, "is required", event_type)
        value = event[name]
        if symbols is not None:
            if not isinstance(value, str) or value not in symbols:
                raise ContractError(name, f"{value!r} is not one of {symbols_text}", event_type)
        elif kind == "time":
            _check_time(event_type, name, value)
        elif kind == "string" and (not isinstance(value, str) or not value):
            raise ContractError(name, "must be a non-empty string", event_type)
        elif kind == "long" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ContractError(name, "must be a non-negative integer", event_type)
        elif kind == "boolean" and not isinstance(value, bool):
            raise ContractError(name, "must be true or false", event_type)
        if type(value) is str and _id_search(value):
            raise ContractError(name, _HOLDS_ID, event_type)
    return event
