"""The audit chain: what it records, and that tampering of any kind is found at its first break."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from schemas.codec import EventCodec
from streams import audit
from streams.processor import Processor
from streams.state import PartitionState
from tests.trust_samples import KEYRING, T0, sample_event, signed_headers

CODEC = EventCodec()
TOPIC = "lienthong.welfare"


def accepted_messages(n: int, partition: int = 0) -> list[tuple[int, bytes, list[tuple[str, bytes]]]]:
    out = []
    for offset in range(n):
        value = CODEC.encode(sample_event("WelfarePaid", offset))
        out.append((offset, value, signed_headers("LABOUR", value)))
    return out


def chain(n: int) -> list[dict[str, Any]]:
    proc = Processor(CODEC, keyring=KEYRING)
    records = []
    for offset, value, headers in accepted_messages(n):
        outcome = proc.process(TOPIC, 0, offset, value, T0 + offset, T0, headers=headers)
        assert outcome.audit is not None
        records.append(outcome.audit)
    return records


def as_topic(records: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    return [(f"offset {i}", audit.encode(r)) for i, r in enumerate(records)]


def test_a_record_says_who_sent_what_and_holds_no_event_content() -> None:
    record = chain(6)[5]
    assert {k: record[k] for k in ("agency", "key_id", "topic", "partition", "offset", "events", "time")} == {
        "agency": "LABOUR", "key_id": "labour-test-1", "topic": TOPIC, "partition": 0, "offset": 5, "events": 1,
        "time": T0 + 5,
    }
    assert len(record["value_sha256"]) == 64
    event = sample_event("WelfarePaid", 5)
    assert event["citizen_ref"] not in str(record) and event["event_id"] not in str(record)


def test_a_chain_starts_from_sixty_four_zeros() -> None:
    assert chain(1)[0]["prev"] == audit.GENESIS


def test_an_untouched_chain_verifies() -> None:
    result = audit.verify(as_topic(chain(5)))
    assert result.ok and result.records == 5 and len(result.chains) == 1


def test_an_altered_record_is_found() -> None:
    records = chain(5)
    records[2] = {**records[2], "agency": "POLICE"}
    [problem] = audit.verify(as_topic(records)).breaks
    assert problem.position == "offset 2" and "altered" in problem.reason


def test_an_altered_record_with_its_hash_recomputed_breaks_the_next_link() -> None:
    records = chain(5)
    forged = {**records[2], "offset": 99}
    forged["hash"] = audit.record_hash(forged)
    records[2] = forged
    [problem] = audit.verify(as_topic(records)).breaks
    assert problem.position == "offset 3" and "removed or reordered" in problem.reason


def test_a_removed_record_is_found() -> None:
    records = chain(5)
    del records[1]
    [problem] = audit.verify(as_topic(records)).breaks
    assert problem.position == "offset 1" and "removed or reordered" in problem.reason


def test_a_removed_first_record_is_found() -> None:
    [problem] = audit.verify(as_topic(chain(3)[1:])).breaks
    assert problem.position == "offset 0"


def test_reordered_records_are_found() -> None:
    records = chain(5)
    records[1], records[2] = records[2], records[1]
    [problem] = audit.verify(as_topic(records)).breaks
    assert problem.position == "offset 1"


def test_garbage_on_the_topic_is_a_break() -> None:
    assert not audit.verify([("offset 0", b"not json")]).ok


def test_a_replay_after_a_crash_recomputes_identical_records_read_as_duplicates() -> None:
    messages = accepted_messages(6)
    proc = Processor(CODEC, keyring=KEYRING)
    first = [proc.process(TOPIC, 0, o, v, T0 + o, T0, headers=h) for o, v, h in messages[:4]]
    # crash: the deltas of offsets 2 and 3 never reached the changelog; their records did
    committed = [o.delta for o in first[:2]]
    restarted = Processor(CODEC, keyring=KEYRING)
    restarted.adopt(PartitionState.fold(0, [d for d in committed if d is not None]))
    again = [restarted.process(TOPIC, 0, o, v, T0 + o, T0, headers=h) for o, v, h in messages[2:]]
    sent = [o.audit for o in first] + [o.audit for o in again]
    assert again[0].audit == first[2].audit
    result = audit.verify(as_topic([r for r in sent if r is not None]))
    assert result.ok and result.duplicates == 2 and result.records == 8


def test_the_record_of_an_applied_message_is_found_in_its_delta_for_a_resend() -> None:
    [offset, value, headers] = accepted_messages(1)[0]
    outcome = Processor(CODEC, keyring=KEYRING).process(TOPIC, 0, offset, value, T0, T0, headers=headers)
    assert outcome.delta is not None
    assert audit.record_of_delta(outcome.delta) == outcome.audit


def test_one_chain_per_source_partition() -> None:
    proc = Processor(CODEC, keyring=KEYRING)
    sent = []
    for partition in (0, 1):
        for offset, value, headers in accepted_messages(3):
            sent.append(proc.process(TOPIC, partition, offset, value, T0, T0, headers=headers).audit)
    result = audit.verify(as_topic([r for r in sent if r is not None]))
    assert result.ok and set(result.chains) == {f"{TOPIC}:0", f"{TOPIC}:1"}


def test_the_hash_is_over_canonical_json() -> None:
    [record] = chain(1)
    body = {k: record[k] for k in audit.FIELDS}
    assert record["hash"] == hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
