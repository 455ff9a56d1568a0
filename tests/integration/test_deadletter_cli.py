"""``lienthong deadletter list | show | replay`` against the real broker and a real worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import EventCodec
from schemas.partitioning import partition_for
from schemas.topics import DEADLETTER, HEALTH, IDENTITY, partition_key
from schemas.wards import ward_codes
from tests.support import hub_env, run_cli, wait_for
from tests.trust_samples import KEYRING
from tests.unit.test_flags import T0, card, checkin

pytestmark = pytest.mark.integration

WARD = min(ward_codes())


def send_raw(broker: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Events encoded without validation, signed by their agency (a broken agency system)."""
    from kafka import KafkaProducer

    codec = EventCodec()
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for event in events:
        key = partition_key(event)
        value = codec.encode(event, check=False)
        producer.send(topic, key=key, value=value, headers=KEYRING.signing_key(event["source"]).headers(value),
                      partition=partition_for(key, 8))
    producer.flush()
    producer.close()


def bad_ward_cards(count: int) -> list[dict[str, Any]]:
    events = [card(T0 + i * 1000, citizen=500 + i) for i in range(count)]
    for event in events:
        event["ward_code"] = "99999"
    return events


def cli(broker: str, tmp_path: Path, *args: str) -> Any:
    return run_cli("deadletter", *args, env=hub_env(broker, tmp_path))


def listed(broker: str, tmp_path: Path, *filters: str) -> list[dict[str, Any]]:
    result = cli(broker, tmp_path, "list", "--json", *filters)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def read_topic(broker: str, topic: str) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=broker, group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000)
    messages = list(consumer)
    consumer.close()
    return messages


@pytest.fixture
def dead_letters(broker, workers):
    """A worker that has dead-lettered 3 garbage messages (HEALTH) and 2 ID cards with a bad ward."""
    worker = workers()
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for i in range(3):
        producer.send(HEALTH, key=b"k%d" % i, value=b"\x00not avro %d" % i)
    producer.flush()
    producer.close()
    send_raw(broker, IDENTITY, bad_ward_cards(2))
    wait_for(lambda: worker.kpis()["events_dead_lettered"] == 5, 60, what="5 dead letters")
    return worker


def test_list_filters_dead_letters_by_agency_field_reason_and_time(broker, dead_letters, tmp_path):
    assert len(listed(broker, tmp_path)) == 5
    assert len(listed(broker, tmp_path, "--agency", "HEALTH")) == 3
    police = listed(broker, tmp_path, "--field", "ward_code")
    assert [row["agency"] for row in police] == ["POLICE", "POLICE"]
    assert all("ward" in row["reason"] and row["source"].startswith(IDENTITY) for row in police)
    assert len(listed(broker, tmp_path, "--reason", "NOT A WARD")) == 2
    assert listed(broker, tmp_path, "--since", "2999-01-01T00:00:00Z") == []
    assert len(listed(broker, tmp_path, "--until", "2999-01-01T00:00:00+07:00")) == 5
    table = cli(broker, tmp_path, "list", "--agency", "POLICE")
    assert table.returncode == 0 and "5 dead letter" not in table.stderr and "2 dead letter(s)" in table.stderr


def test_show_decodes_an_avro_dead_letter_and_dumps_one_that_is_not(broker, dead_letters, tmp_path):
    bad_ward = listed(broker, tmp_path, "--field", "ward_code")[0]
    shown = cli(broker, tmp_path, "show", bad_ward["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["event"]["event_type"] == "IdCardIssued" and body["event"]["ward_code"] == "99999"
    assert body["event"]["occurred_at"].endswith("Z")
    assert body["headers"]["lienthong.source.topic"] == IDENTITY
    garbage = listed(broker, tmp_path, "--agency", "HEALTH")[0]
    text = cli(broker, tmp_path, "show", garbage["id"])
    assert text.returncode == 0 and "not an event of any known schema" in text.stdout and "00 6e 6f 74" in text.stdout


def test_show_of_an_unknown_or_malformed_id_is_one_clear_error(broker, dead_letters, tmp_path):
    unknown = cli(broker, tmp_path, "show", "0:99999")
    assert unknown.returncode == 1 and "no dead letter 0:99999" in unknown.stderr and "Traceback" not in unknown.stderr
    malformed = cli(broker, tmp_path, "show", "seven")
    assert malformed.returncode == 2 and "partition:offset" in malformed.stderr


def test_a_corrected_file_replayed_twice_counts_each_event_once(broker, dead_letters, tmp_path):
    worker = dead_letters
    rows = listed(broker, tmp_path, "--field", "ward_code")
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text("".join(json.dumps(dict(row, event=dict(row["event"], ward_code=WARD))) + "\n" for row in rows))
    for attempt in (1, 2):
        result = cli(broker, tmp_path, "replay", "--file", str(fixed))
        assert result.returncode == 0, result.stderr[-2000:]
        assert "2 replayed, 0 refused" in result.stdout
        wait_for(lambda: worker.kpis()["events_duplicate"] == 2 * (attempt - 1), 60,
                 what=f"replay {attempt} to be processed")
    kpis = wait_for(lambda: (k := worker.kpis())["id_cards_issued"] == 2 and k, 60, what="the corrected cards")
    assert kpis["events_duplicate"] == 2  # the second replay: seen, not counted
    assert kpis["events_dead_lettered"] == 5  # nothing new refused


def put_dead_letter(broker: str, value: bytes, key: bytes, source_topic: str, source_partition: int,
                    *extra: tuple[str, bytes], reason: bytes = b"IdCardIssued.ward_code: not a ward") -> None:
    """A dead letter as a worker writes one (plus any headers a signed sender's letters carry)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    producer.send(DEADLETTER, key=key, value=value, headers=[
        ("lienthong.reason", reason), ("lienthong.field", reason.split(b":")[0].split(b".")[-1]),
        ("lienthong.source.topic", source_topic.encode()),
        ("lienthong.source.partition", str(source_partition).encode()), ("lienthong.source.offset", b"0"),
        *extra])
    producer.flush()
    producer.close()


STALE_SENDER = (("lienthong.agency", b"POLICE"), ("lienthong.key_id", b"police-test-1"), ("lienthong.signature", b"stale"))


def test_a_corrected_replay_carries_lineage_and_a_fresh_signature(broker, workers, tmp_path):
    worker = workers()
    (bad,) = bad_ward_cards(1)
    put_dead_letter(broker, EventCodec().encode(bad, check=False), partition_key(bad), IDENTITY, 0, *STALE_SENDER)
    row = listed(broker, tmp_path)[0]
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps(dict(row, event=dict(row["event"], ward_code=WARD))) + "\n")
    assert cli(broker, tmp_path, "replay", "--file", str(fixed)).returncode == 0
    replayed = [m for m in read_topic(broker, IDENTITY) if any(k == "lienthong.replay.of" for k, _ in m.headers)]
    assert len(replayed) == 1
    headers = dict(replayed[0].headers)
    assert headers["lienthong.replay.of"] == f"{DEADLETTER}/{row['id'].replace(':', '/')}".encode()
    assert headers["lienthong.replay.source"] == f"{IDENTITY}/0/0".encode()
    assert b"ward" in headers["lienthong.replay.reason"] and headers["lienthong.replay.corrected"] == b"true"
    assert headers["lienthong.replay.at"].endswith(b"Z")
    value = replayed[0].value
    assert [(k, v) for k, v in replayed[0].headers if k in ("lienthong.agency", "lienthong.key_id", "lienthong.signature")] \
        == KEYRING.signing_key("POLICE").headers(value)  # signed afresh: the old signature covered the old bytes
    assert "lienthong.reason" not in headers
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 1, 60, what="the corrected card")


def test_replay_by_id_sends_the_same_bytes_back_and_counts_once(broker, workers, tmp_path):
    """A dead letter whose bytes are acceptable now (the hub, not the agency, was at fault)."""
    worker = workers()
    visit = checkin(T0, citizen=7, found=True)
    value = EventCodec().encode(visit)
    source_partition = partition_for(partition_key(visit), 8)
    put_dead_letter(broker, value, partition_key(visit), HEALTH, source_partition,
                    *KEYRING.signing_key("HEALTH").headers(value), reason=b"MedicalCheckIn.facility_code: unknown facility")
    letter = listed(broker, tmp_path)[0]
    for attempt in (1, 2):
        result = cli(broker, tmp_path, "replay", letter["id"])
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"replayed {letter['id']} -> {HEALTH}/{source_partition}" in result.stdout
        wait_for(lambda: worker.kpis()["checkins_by_id_card"] == 1 and worker.kpis()["events_duplicate"] == attempt - 1,
                 60, what=f"replay {attempt} processed")
    copies = [m for m in read_topic(broker, HEALTH) if m.value == value]
    assert len(copies) == 2 and {m.partition for m in copies} == {source_partition}
    signature = dict(KEYRING.signing_key("HEALTH").headers(value))["lienthong.signature"]
    assert all(dict(m.headers)["lienthong.signature"] == signature for m in copies)  # same bytes, same proof


def test_a_replay_refused_again_is_dead_lettered_with_its_lineage(broker, dead_letters, tmp_path):
    """The agency has not fixed the ward yet: the replayed card is refused again, and says where it came from."""
    first = listed(broker, tmp_path, "--field", "ward_code")[0]
    result = cli(broker, tmp_path, "replay", first["id"])
    assert result.returncode == 0, result.stderr[-2000:]
    wait_for(lambda: dead_letters.kpis()["events_dead_lettered"] == 6, 60, what="the replay refused again")
    again = [m for m in read_topic(broker, DEADLETTER) if any(k == "lienthong.replay.of" for k, _ in m.headers)]
    assert len(again) == 1
    headers = dict(again[0].headers)
    assert headers["lienthong.replay.of"] == f"{DEADLETTER}/{first['id'].replace(':', '/')}".encode()
    assert headers["lienthong.replay.corrected"] == b"false" and b"ward" in headers["lienthong.replay.reason"]
    assert b"ward" in headers["lienthong.reason"] and headers["lienthong.source.topic"] == IDENTITY.encode()


def test_a_redacted_dead_letter_is_not_replayed_as_it_is(broker, workers, tmp_path):
    workers()
    put_dead_letter(broker, b"masked", b"k", HEALTH, 1, ("lienthong.redacted", b"true"))
    result = cli(broker, tmp_path, "replay", "--all")
    assert result.returncode == 1 and "redacted" in result.stderr and "0 replayed, 1 refused" in result.stdout


def test_replay_needs_to_be_told_what_to_replay(broker, tmp_path):
    result = cli(broker, tmp_path, "replay")
    assert result.returncode == 2 and "say what to replay" in result.stderr


def test_a_corrected_line_that_is_still_wrong_is_reported_and_the_others_go(broker, dead_letters, tmp_path):
    worker = dead_letters
    rows = listed(broker, tmp_path, "--field", "ward_code")
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps(dict(rows[0], event=dict(rows[0]["event"], ward_code=WARD))) + "\n"
                     + json.dumps(rows[1]) + "\n" + "{not json\n")
    result = cli(broker, tmp_path, "replay", "--file", str(fixed))
    assert result.returncode == 1
    assert "line 2: ward_code:" in result.stderr and "line 3: line: not JSON" in result.stderr
    assert "1 replayed, 2 refused" in result.stdout
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 1, 60, what="the one corrected card")


def test_one_bad_item_of_a_batch_is_listed_with_its_index_and_its_correction_counts(broker, workers, tmp_path):
    from kafka import KafkaProducer

    worker = workers()
    codec = EventCodec()
    events = [card(T0 + i, citizen=900 + i) for i in range(3)]
    events[1]["ward_code"] = "99999"
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    batch = codec.encode_batch([codec.encode(e, check=False) for e in events])
    producer.send(IDENTITY, key=b"batch", partition=0, value=batch, headers=KEYRING.signing_key("POLICE").headers(batch))
    producer.flush()
    producer.close()
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 2 and worker.kpis()["events_dead_lettered"] == 1, 60,
             what="two cards counted, one item dead-lettered")
    (row,) = listed(broker, tmp_path)
    assert row["source"].endswith("#1") and row["event"]["event_id"] == events[1]["event_id"]
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps(dict(row, event=dict(row["event"], ward_code=WARD))) + "\n")
    assert cli(broker, tmp_path, "replay", "--file", str(fixed)).returncode == 0
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 3, 60, what="the corrected item counted")
