"""The codec's wire format, its refusals, and the optional Confluent framing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.codec import MARKER, EventCodec
from schemas.confluent import (
    ConfluentFraming,
    RegistryClient,
    SchemaRegistryUnavailable,
    subject_of,
)
from schemas.errors import ContractError
from schemas.registry import AVRO_DIR, SchemaRegistry, default_registry
from schemas.wards import ward_codes
from tests.registry_stand_in import StandInRegistry

CODEC = EventCodec()
WARD = min(ward_codes())


def welfare(**changes: Any) -> dict[str, Any]:
    event = {
        "event_type": "WelfarePaid",
        "event_id": "0b7f4c2e-2d7a-4d55-9a4e-5d7c8a1e9f10",
        "source": "LABOUR",
        "occurred_at": 1_717_200_000_000,
        "ward_code": WARD,
        "citizen_ref": "ab" * 32,
        "correlation_id": None,
        "channel": "BANK_ACCOUNT",
        "amount_vnd": 1_500_000,
    }
    event.update(changes)
    return event


# -- single-object encoding ------------------------------------------------------
def test_message_starts_with_marker_and_the_writer_fingerprint() -> None:
    message = CODEC.encode(welfare())
    sv = default_registry().latest("WelfarePaid")
    assert message[:2] == b"\xc3\x01"
    assert message[2:10] == sv.fingerprint


def test_fingerprint_is_crc64_avro_of_the_canonical_form_little_endian() -> None:
    sv = default_registry().latest("WelfarePaid")
    canonical = to_parsing_canonical_form(parse_schema(json.loads(json.dumps(sv.schema))))
    assert sv.fingerprint == int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")


def test_invalid_event_is_refused_before_encoding_with_the_field() -> None:
    with pytest.raises(ContractError) as caught:
        CODEC.encode(welfare(ward_code="99999"))
    assert caught.value.field == "ward_code"


def test_unknown_fingerprint_is_refused() -> None:
    message = CODEC.encode(welfare())
    with pytest.raises(ContractError) as caught:
        CODEC.decode_message(message[:2] + b"\x00" * 8 + message[10:])
    assert caught.value.field == "fingerprint"


def test_a_flag_is_not_an_event() -> None:
    flag = {
        "flag_id": "SYNC_FAILED:x", "type": "SYNC_FAILED", "status": "OPEN", "agency": "SOCIAL_INSURANCE",
        "ward_code": WARD, "subject": "ab" * 32, "opened_at": 1_717_200_000_000, "resolved_at": None,
        "detail": "", "evidence": [],
    }
    with pytest.raises(ContractError, match="not an event"):
        CODEC.decode_message(CODEC.encode_record("Flag", flag))


def test_decode_refuses_a_batch_and_names_decode_message() -> None:
    batch = CODEC.encode_batch([CODEC.encode(welfare())])
    with pytest.raises(ContractError, match="decode_message"):
        CODEC.decode(batch)


def test_a_batch_item_decodes_to_the_same_event_as_a_single_message() -> None:
    data = CODEC.encode(welfare())
    assert CODEC.decode_item(data) == CODEC.decode(data) == welfare()


def test_a_batch_item_with_trailing_bytes_is_refused_naming_the_body() -> None:
    with pytest.raises(ContractError) as err:
        CODEC.decode_item(CODEC.encode(welfare()) + b"\x00")
    assert err.value.field == "body" and "trailing" in err.value.reason


def test_a_batch_item_that_is_a_flag_is_refused_as_not_an_event() -> None:
    flag = CODEC.encode_record("Flag", {
        "flag_id": "SYNC_FAILED:x", "type": "SYNC_FAILED", "status": "OPEN", "agency": "SOCIAL_INSURANCE",
        "ward_code": WARD, "subject": "x", "opened_at": 1_717_200_000_000, "resolved_at": None,
        "detail": "", "evidence": [],
    })
    with pytest.raises(ContractError, match="not an event"):
        CODEC.decode_item(flag)


def test_events_written_by_an_older_version_are_read_by_a_newer_codec(tmp_path: Path) -> None:
    for name in ("Envelope", "EventBatch", "WelfarePaid"):
        shutil.copytree(AVRO_DIR / name, tmp_path / name)
    old = EventCodec(SchemaRegistry(tmp_path))
    message = old.encode(welfare())
    v2 = json.loads((tmp_path / "WelfarePaid" / "v1.avsc").read_text())
    v2["fields"].append({"name": "program_code", "type": ["null", "string"], "default": None})
    (tmp_path / "WelfarePaid" / "v2.avsc").write_text(json.dumps(v2))
    new = EventCodec(SchemaRegistry(tmp_path))
    assert new.schema_of(message).version == 1
    assert new.decode(message) == welfare()


# -- Confluent framing, against a stand-in registry (tests/registry_stand_in.py) ----


def confluent_codec(url: str) -> EventCodec:
    return EventCodec.for_registry_url(url)


def test_default_codec_writes_single_object_encoding() -> None:
    assert EventCodec.for_registry_url("").encode(welfare())[:2] == MARKER


def test_confluent_message_is_magic_zero_then_big_endian_schema_id(stand_in: StandInRegistry) -> None:
    message = confluent_codec(stand_in.url).encode(welfare())
    assert message[0] == 0
    assert int.from_bytes(message[1:5], "big") == 1
    assert stand_in.requests == ["POST /subjects/lienthong.events.WelfarePaid/versions"]


def test_confluent_message_round_trips_through_a_fresh_codec(stand_in: StandInRegistry) -> None:
    message = confluent_codec(stand_in.url).encode(welfare())
    assert confluent_codec(stand_in.url).decode_message(message) == [welfare()]


def test_registry_lookups_are_cached(stand_in: StandInRegistry) -> None:
    writer, reader = confluent_codec(stand_in.url), confluent_codec(stand_in.url)
    for amount in range(1, 4):
        reader.decode(writer.encode(welfare(amount_vnd=amount)))
    assert stand_in.requests == ["POST /subjects/lienthong.events.WelfarePaid/versions", "GET /schemas/ids/1"]


def test_confluent_codec_still_reads_single_object_messages(stand_in: StandInRegistry) -> None:
    assert confluent_codec(stand_in.url).decode(CODEC.encode(welfare())) == welfare()


def test_confluent_batch_of_confluent_items_round_trips(stand_in: StandInRegistry) -> None:
    codec = confluent_codec(stand_in.url)
    batch = codec.encode_batch([codec.encode(welfare(amount_vnd=n)) for n in (1, 2)])
    assert batch[0] == 0
    assert [e["amount_vnd"] for e in codec.decode_message(batch)] == [1, 2]


def test_confluent_message_without_a_configured_registry_is_a_contract_error(stand_in: StandInRegistry) -> None:
    message = confluent_codec(stand_in.url).encode(welfare())
    with pytest.raises(ContractError, match="no schema registry"):
        CODEC.decode(message)


def test_unknown_schema_id_is_a_contract_error(stand_in: StandInRegistry) -> None:
    with pytest.raises(ContractError) as caught:
        confluent_codec(stand_in.url).decode(b"\x00\x00\x00\x00\x07" + b"\x00" * 20)
    assert caught.value.field == "schema_id"


def test_registered_schema_that_is_not_a_released_contract_is_refused(stand_in: StandInRegistry) -> None:
    foreign = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "long"}]}
    schema_id = RegistryClient(stand_in.url).register("Other", json.dumps(foreign))
    with pytest.raises(ContractError, match="not a released"):
        confluent_codec(stand_in.url).decode(b"\x00" + schema_id.to_bytes(4, "big") + b"\x02")


def test_unreachable_registry_is_not_blamed_on_the_message() -> None:
    framing = ConfluentFraming(RegistryClient("http://127.0.0.1:9", timeout=2), default_registry())
    with pytest.raises(SchemaRegistryUnavailable):
        EventCodec(confluent=framing).decode(b"\x00\x00\x00\x00\x01\x00")


def test_subject_is_the_record_full_name() -> None:
    assert subject_of(default_registry().latest("Flag")) == "lienthong.alerts.Flag"
