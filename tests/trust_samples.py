"""Events of every type, and copies of them with a raw ID number planted in each field.

For the tests that promise no raw personal ID number reaches a dead letter, an
alert or a log line: every string field of every event type gets one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from schemas.codec import EventCodec
from schemas.contracts import SOURCE_OF_EVENT
from schemas.errors import ContractError
from schemas.personal_ids import has_id, ids_in_bytes
from schemas.registry import default_registry
from schemas.signing import Keyring, parse_keyring
from schemas.wards import ward_codes
from tests.support import TEST_SIGNING_KEYS

RAW_ID = "079200001234"
T0 = 1_717_200_000_000
WARD = min(ward_codes())
KEYRING: Keyring = parse_keyring(TEST_SIGNING_KEYS)


def sample_event(event_type: str, n: int = 0) -> dict[str, Any]:
    """A valid event of ``event_type`` (the ``n``-th of its kind: distinct ids)."""
    source = SOURCE_OF_EVENT[event_type] or "POLICE"
    event: dict[str, Any] = {
        "event_type": event_type,
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lienthong-test/{event_type}/{n}")),
        "source": source,
        "occurred_at": T0 + n,
        "ward_code": WARD,
        "citizen_ref": f"{n:064x}",
        "correlation_id": f"HS-{event_type}-{n}",
    }
    if event_type == "ConnectorHeartbeat":
        event.update(ward_code="", citizen_ref="", correlation_id=None)
    for f in default_registry().latest(event_type).schema["fields"]:
        kind = f["type"]
        if f["name"] == "envelope":
            continue
        if isinstance(kind, dict) and kind.get("type") == "enum":
            event[f["name"]] = kind["symbols"][0]
        elif isinstance(kind, dict):  # timestamp-millis
            event[f["name"]] = T0 + 3_600_000
        elif kind == "long":
            event[f["name"]] = 1000
        elif kind == "boolean":
            event[f["name"]] = False
        else:  # string or optional string
            event[f["name"]] = "text"
    return event


def planted(codec: EventCodec) -> Iterator[tuple[str, str, bytes]]:
    """``(event_type, field, encoded)``: each event type with a raw ID in each field Avro lets hold one.

    Both an exact ID and one inside free text. Enum, number and boolean fields
    cannot hold one (Avro refuses to write it), so they are left out.
    """
    for event_type in sorted(default_registry().event_types):
        base = sample_event(event_type)
        for name, value in base.items():
            if name == "event_type" or not isinstance(value, (str, type(None))):
                continue
            for text in (RAW_ID, f"ref {RAW_ID} at counter"):
                try:
                    encoded = codec.encode({**base, name: text}, check=False)
                except ContractError:
                    continue  # an enum: cannot hold the text
                yield event_type, name, encoded


def ids_in(data: bytes) -> list[bytes]:
    """ID-shaped runs in raw bytes, leaving out UUIDs and digests (see ``schemas.personal_ids``)."""
    return ids_in_bytes(data)


def text_has_id(text: str) -> bool:
    return has_id(text)


def signed_headers(agency: str, value: bytes) -> list[tuple[str, bytes]]:
    return KEYRING.signing_key(agency).headers(value)
