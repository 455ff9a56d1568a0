"""The worker's core refuses what no agency proved, and cleans every refusal of ID numbers."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.codec import EventCodec
from schemas.contracts import TOPIC_OF_EVENT
from schemas.pseudonym import Pseudonymiser
from schemas.validation import validate
from streams.processor import Outcome, Processor
from streams.redaction import DeadLetterRedactor
from tests.support import TEST_PSEUDONYM_KEY
from tests.trust_samples import KEYRING, RAW_ID, T0, ids_in, planted, sample_event, signed_headers

CODEC = EventCodec()
PSEUDONYMS = Pseudonymiser(TEST_PSEUDONYM_KEY.encode())


def processor() -> Processor:
    return Processor(CODEC, keyring=KEYRING, redactor=DeadLetterRedactor(CODEC, PSEUDONYMS.ref))


def run(proc: Processor, value: bytes, headers: Any, offset: int = 0, topic: str = "lienthong.welfare") -> Outcome:
    return proc.process(topic, 0, offset, value, T0, T0, headers=headers)


def welfare(n: int = 0, **changes: Any) -> dict[str, Any]:
    return {**sample_event("WelfarePaid", n), **changes}


def test_a_signed_message_counts_and_an_unsigned_one_is_dead_lettered_as_unsigned() -> None:
    proc = processor()
    good = CODEC.encode(welfare(1))
    assert run(proc, good, signed_headers("LABOUR", good)).accepted == {"LABOUR": 1}
    unsigned = CODEC.encode(welfare(2))
    outcome = run(proc, unsigned, None, offset=1)
    assert not outcome.accepted
    [dead] = outcome.dead_letters
    assert dead.error.field == "signature" and "unsigned" in dead.error.reason
    assert proc.state(0).counters[next(k for k in proc.state(0).counters if k.startswith("events_dead_lettered"))] == 1


def test_a_message_signed_by_another_agency_than_its_source_is_refused() -> None:
    value = CODEC.encode(welfare(1))
    outcome = run(processor(), value, signed_headers("POLICE", value))
    [dead] = outcome.dead_letters
    assert dead.error.field == "source" and "signed by POLICE, not LABOUR" in dead.error.reason


def test_in_a_batch_only_the_item_of_another_agency_is_refused_and_the_rest_count() -> None:
    items = [CODEC.encode(welfare(i)) for i in range(3)]
    items.insert(1, CODEC.encode(sample_event("IdCardIssued", 9)))  # POLICE's event in LABOUR's batch
    batch = CODEC.encode_batch(items)
    outcome = run(processor(), batch, signed_headers("LABOUR", batch))
    assert outcome.accepted == {"LABOUR": 3}
    [dead] = outcome.dead_letters
    assert dead.batch_index == 1 and dead.error.field == "source"
    assert ("lienthong.source.agency", b"LABOUR") in dead.headers()


def test_a_forged_batch_is_refused_whole_nothing_in_it_counts() -> None:
    batch = CODEC.encode_batch([CODEC.encode(welfare(i)) for i in range(3)])
    headers = signed_headers("LABOUR", batch)
    outcome = run(processor(), batch + b"", [(n, v if n != "lienthong.signature" else b"0" * 64) for n, v in headers])
    assert not outcome.accepted and len(outcome.dead_letters) == 1
    assert outcome.dead_letters[0].batch_index is None
    assert outcome.audit is None


def test_both_key_ids_of_a_rotation_are_counted() -> None:
    proc = processor()
    for offset, key_id in enumerate(("police-test-1", "police-test-2")):
        value = CODEC.encode(sample_event("IdCardIssued", offset))
        outcome = run(proc, value, KEYRING.keys[key_id].headers(value), offset, "lienthong.identity")
        assert outcome.accepted == {"POLICE": 1}
        assert outcome.audit is not None and outcome.audit["key_id"] == key_id


def test_with_verification_off_unsigned_messages_count() -> None:
    value = CODEC.encode(welfare(1))
    assert Processor(CODEC).process("lienthong.welfare", 0, 0, value, T0, T0, headers=None).accepted == {"LABOUR": 1}


CASES = list(planted(CODEC))


def test_every_string_field_of_every_event_type_is_planted() -> None:
    fields = {(t, f) for t, f, _ in CASES}
    assert ("WelfarePaid", "citizen_ref") in fields and ("HealthInsuranceSynced", "failure_reason") in fields
    assert ("ProcedureSubmitted", "agency_code") in fields and ("ConnectorHeartbeat", "connector") in fields
    assert len({t for t, _ in fields}) == 15


@pytest.mark.parametrize(("event_type", "field", "value"), CASES, ids=[f"{t}.{f}.{i}" for i, (t, f, _) in enumerate(CASES)])
def test_a_raw_id_in_any_field_never_reaches_a_dead_letter_single_or_batched(event_type: str, field: str, value: bytes) -> None:
    agency = sample_event(event_type)["source"]
    topic = TOPIC_OF_EVENT[event_type]
    good = CODEC.encode(sample_event(event_type, 7))
    batch = CODEC.encode_batch([good, value])
    proc = processor()
    for offset, message in enumerate((value, batch)):
        outcome = run(proc, message, signed_headers(agency, message), offset, topic)
        [dead] = outcome.dead_letters
        assert not ids_in(dead.value), (field, dead.value)
        for name, header in dead.headers():
            assert not ids_in(header), (name, header)
        assert dict(dead.headers())["lienthong.redacted"] != b"0"
        assert RAW_ID not in str(dead.error)
    assert outcome.accepted == {agency: 1}  # the good item of the batch still counted


def test_a_raw_id_sent_as_citizen_ref_becomes_its_pseudonym_so_the_dead_letter_replays() -> None:
    value = CODEC.encode(welfare(1, citizen_ref=RAW_ID), check=False)
    [dead] = run(processor(), value, signed_headers("LABOUR", value)).dead_letters
    replayed = validate(CODEC.decode(dead.value))
    assert replayed["citizen_ref"] == PSEUDONYMS.ref(RAW_ID)


def test_undecodable_bytes_are_masked_in_place_keeping_their_length() -> None:
    value = b"\x00garbage " + RAW_ID.encode() + b" more"
    [dead] = run(processor(), value, signed_headers("LABOUR", value)).dead_letters
    assert len(dead.value) == len(value) and not ids_in(dead.value)
