"""An agency's JSON event (gateway body, outbox payload) as a valid hub event.

The HTTP gateway and the PostgreSQL outbox accept the same JSON, so one function
turns it into an event: times as ISO 8601 or epoch ms, the raw ``citizen_id``
pseudonymised (the only place it is handled, and never kept), and the agency's
right to publish the event type checked. Mistakes raise ``ContractError`` naming
the field; an agency overstepping its rights raises :class:`ForbiddenEvent`, so the
gateway can answer 403 instead of 400.
"""

from __future__ import annotations

from typing import Any

from connectors.csv_import import parse_time
from connectors.sdk import prepare
from schemas.contracts import SOURCE_OF_EVENT
from schemas.errors import ContractError
from schemas.personal_ids import mask_text
from schemas.pseudonym import Pseudonymiser
from schemas.validation import ENVELOPE_FIELDS, Event, payload_fields


def redact(text: str) -> str:
    """Error text with anything shaped like a personal ID number masked.

    Validation reasons quote the offending value, and an agency may well have put
    an ID number in the wrong field; a response, log line or error column must
    never echo it back.
    """
    return mask_text(text)


class ForbiddenEvent(ContractError):
    """Well-formed, but not this agency's to publish (another agency's type or source)."""


def _is_time_field(field_type: Any) -> bool:
    return isinstance(field_type, dict) and field_type.get("logicalType") == "timestamp-millis"


def _time_ms(value: Any, name: str, event_type: str) -> int:
    """Epoch ms as given, or an ISO 8601 string with ``Z``/offset converted to epoch ms."""
    if isinstance(value, bool):
        raise ContractError(name, "must be an ISO 8601 time or epoch milliseconds", event_type)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return parse_time(value, name)
        except ContractError as exc:
            raise ContractError(name, exc.reason, event_type) from None
    raise ContractError(name, "must be an ISO 8601 time or epoch milliseconds", event_type)


def event_type_of(obj: Any) -> str:
    """The known event type of a JSON object, or a ``ContractError`` saying why not."""
    if not isinstance(obj, dict):
        raise ContractError("event", "must be a JSON object")
    event_type = obj.get("event_type")
    if not isinstance(event_type, str) or event_type not in SOURCE_OF_EVENT:
        raise ContractError("event_type", f"unknown event type {event_type!r}")
    return event_type


def check_rights(obj: dict[str, Any], agency: str) -> None:
    """Raise :class:`ForbiddenEvent` if ``agency`` may not publish this event.

    An agency publishes only its own event types (any may send a heartbeat) and
    only under its own name: the hub's figures per agency rely on ``source``.
    """
    event_type = event_type_of(obj)
    owner = SOURCE_OF_EVENT[event_type]
    if owner is not None and owner != agency:
        raise ForbiddenEvent("event_type", f"{event_type} is published by {owner}, not {agency}", event_type)
    source = obj.get("source")
    if source not in (None, "", agency):
        raise ForbiddenEvent("source", f"{agency} may not publish as {source!r}", event_type)


def event_from_json(
    obj: Any,
    *,
    agency: str,
    pseudonymiser: Pseudonymiser,
    default_event_id: str | None = None,
) -> Event:
    """A valid event from an agency's JSON object, or ``ContractError``/``ForbiddenEvent``.

    ``default_event_id`` is used when the object has none (the outbox derives one
    from the row, so a re-publish after a crash carries the same id); without it a
    fresh UUID is generated.
    """
    event_type = event_type_of(obj)
    check_rights(obj, agency)
    fields = {f["name"]: f["type"] for f in payload_fields(event_type)}
    known = {"event_type", "citizen_id", *ENVELOPE_FIELDS, *fields}
    for name in obj:
        if name not in known:
            raise ContractError(str(name), f"is not a field of {event_type}", event_type)
    raw: dict[str, Any] = {k: v for k, v in obj.items() if v is not None or k == "correlation_id"}
    raw["source"] = agency
    if "citizen_id" in raw:
        if "citizen_ref" in raw:
            raise ContractError("citizen_id", "give citizen_id or citizen_ref, not both", event_type)
        if not isinstance(raw["citizen_id"], str):
            # a JSON number would silently drop the leading zero of e.g. 079...
            raise ContractError("citizen_id", "must be a JSON string of exactly 12 digits", event_type)
    if "occurred_at" not in raw:
        raise ContractError("occurred_at", "is required", event_type)
    raw["occurred_at"] = _time_ms(raw["occurred_at"], "occurred_at", event_type)
    for name, field_type in fields.items():
        if name in raw and _is_time_field(field_type):
            raw[name] = _time_ms(raw[name], name, event_type)
    if not raw.get("event_id") and default_event_id is not None:
        raw["event_id"] = default_event_id
    if not raw.get("event_id"):
        raw.pop("event_id", None)
    try:
        return prepare(raw, pseudonymiser)
    except ContractError as exc:
        if exc.event_type is None:
            raise ContractError(exc.field, exc.reason, event_type) from None
        raise
