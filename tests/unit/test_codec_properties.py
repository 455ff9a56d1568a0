"""Property tests: every valid event of every type survives the codec unchanged.

Strategies are built from the schemas themselves (enum symbols, field types,
defaults) plus the rules of ``schemas.validation`` (city ward codes, 64-hex
pseudonyms, plausible UTC millisecond times), so a new field or symbol is
covered without touching this file.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.contracts import NEEDS_CORRELATION, SOURCE_OF_EVENT
from schemas.errors import ContractError
from schemas.registry import default_registry
from schemas.validation import payload_fields, validate
from schemas.vocabulary import AGENCIES
from schemas.wards import ward_codes

CODEC = EventCodec()
EVENT_TYPES = default_registry().event_types
MIN_MS, MAX_MS = 946_684_800_000, 4_102_444_800_000 - 1

texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)  # UTF-8 encodable
dossier_ids = texts.filter(lambda s: bool(s.strip()))
times = st.integers(MIN_MS, MAX_MS)
refs = st.binary(min_size=32, max_size=32).map(bytes.hex)


def _value(ftype: Any) -> st.SearchStrategy[Any]:
    """A strategy for one payload field, from its Avro type."""
    if isinstance(ftype, list):
        return st.one_of(*[_value(branch) for branch in ftype])
    if isinstance(ftype, dict):
        if ftype.get("type") == "enum":
            return st.sampled_from(ftype["symbols"])
        if ftype.get("logicalType") == "timestamp-millis":
            return times
        return _value(ftype["type"])
    return {
        "null": st.none(),
        "string": texts,
        "long": st.integers(0, 2**63 - 1),
        "boolean": st.booleans(),
    }[ftype]


@st.composite
def events(draw: st.DrawFn, event_type: str | None = None) -> dict[str, Any]:
    """A valid event; fields with a default are sometimes left out."""
    etype = event_type or draw(st.sampled_from(EVENT_TYPES))
    heartbeat = etype == "ConnectorHeartbeat"
    corr = draw(dossier_ids) if etype in NEEDS_CORRELATION else draw(st.none() | dossier_ids)
    event: dict[str, Any] = {
        "event_type": etype,
        "event_id": str(draw(st.uuids())),
        "source": SOURCE_OF_EVENT[etype] or draw(st.sampled_from(AGENCIES)),
        "occurred_at": draw(times),
        "ward_code": "" if heartbeat else draw(st.sampled_from(sorted(ward_codes()))),
        "citizen_ref": "" if heartbeat else draw(refs),
        "correlation_id": corr,
    }
    for field in payload_fields(etype):
        if "default" in field and draw(st.booleans()):
            continue
        event[field["name"]] = draw(_value(field["type"]))
    return validate(event)


def _with_defaults(event: dict[str, Any]) -> dict[str, Any]:
    expected = {f["name"]: f["default"] for f in payload_fields(event["event_type"]) if "default" in f}
    expected.update(event)
    return expected


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(max_examples=40)
@given(data=st.data())
def test_every_event_type_round_trips_through_encode_and_decode_message(
    event_type: str, data: st.DataObject
) -> None:
    event = data.draw(events(event_type))
    assert CODEC.decode_message(CODEC.encode(event)) == [_with_defaults(event)]


@settings(max_examples=50)
@given(st.lists(events(), min_size=1, max_size=8))
def test_a_batch_of_events_round_trips_in_order(batch: list[dict[str, Any]]) -> None:
    message = CODEC.encode_batch(CODEC.encode(e) for e in batch)
    assert CODEC.decode_message(message) == [_with_defaults(e) for e in batch]


@given(events())
def test_the_header_names_the_latest_schema_of_the_event_type(event: dict[str, Any]) -> None:
    assert CODEC.schema_of(CODEC.encode(event)) is default_registry().latest(event["event_type"])


@settings(max_examples=50)
@given(st.lists(events(), min_size=1, max_size=8))
def test_a_batch_of_valid_events_is_taken_whole_by_the_per_item_policy(batch: list[dict[str, Any]]) -> None:
    decoded = CODEC.decode_each(CODEC.encode_batch(CODEC.encode(e) for e in batch), validate)
    assert decoded.events == [_with_defaults(e) for e in batch]
    assert decoded.indexes == list(range(len(batch)))
    assert decoded.refused == []


@settings(max_examples=50)
@given(st.lists(events(), min_size=2, max_size=6), st.data())
def test_an_item_the_check_refuses_is_refused_alone_with_its_reason(
    batch: list[dict[str, Any]], data: st.DataObject
) -> None:
    assume(len({e["event_id"] for e in batch}) == len(batch))
    bad = data.draw(st.integers(0, len(batch) - 1))
    encoded = [CODEC.encode(e) for e in batch]

    def check(event: dict[str, Any]) -> dict[str, Any]:
        if event["event_id"] == batch[bad]["event_id"]:
            raise ContractError("source", "signed by another agency", event["event_type"])
        return event

    decoded = CODEC.decode_each(CODEC.encode_batch(encoded), check)
    assert decoded.indexes == [i for i in range(len(batch)) if i != bad]
    assert [(r.value, r.batch_index, r.error.field) for r in decoded.refused] == [(encoded[bad], bad, "source")]
