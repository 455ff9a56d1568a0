"""Dead letters an operator can act on: read, filter, decode and replay them.

Kafka Connect's dead-letter queue is write-only; ours is read back here so an
operator can see what an agency sent wrong (by agency, reason, field and time),
look at one message decoded, and, once the agency has fixed its system, send the
messages (unchanged, or corrected in a file) back to their source topic.

Replays are idempotent where it matters: an event keeps its ``event_id``, and the
worker counts an id once, so a message replayed twice (or replayed after all)
still counts once. Each replayed message carries lineage headers
(``lienthong.replay.*``) naming the dead letter it came from; other headers of
the dead letter (an agency's signature, key id, …) travel with it unchanged.

Reading uses a consumer without a group (``group_id=None``): an operator's look
must not join, rebalance or commit anything, and kafka-python's group join does
not complete on the embedded broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.csv_import import parse_time
from connectors.json_event import event_from_json, redact
from connectors.pseudonym import Pseudonymiser
from lienthong.kafka_security import kafka_python_config
from schemas.codec import EventCodec
from schemas.errors import ContractError
from schemas.partitioning import partition_for
from schemas.signing import Keyring
from schemas.topics import DEADLETTER, SOURCE_OF_EVENT, TOPIC_OF_EVENT, partition_key
from schemas.validation import payload_fields
from streams.clock import iso_utc

#: Headers the worker writes on a dead letter; on replay they become ``lienthong.replay.*``.
REASON_HEADERS = ("lienthong.reason", "lienthong.field", "lienthong.source.topic",
                  "lienthong.source.partition", "lienthong.source.offset", "lienthong.source.batch_index")
#: A dead letter whose value was redacted is not the agency's message any more.
REDACTED_HEADER = "lienthong.redacted"
#: A signature covers the original value: a corrected event is signed afresh (or sent unsigned).
SIGNATURE_HEADERS = ("lienthong.signature",)
SIGNING_HEADERS = ("lienthong.agency", "lienthong.key_id", "lienthong.signature")
#: How long the reader waits for more dead letters before it has read them all.
#: (Tansu's end offsets run a few records short, so "all" is "nothing new for a while".)
IDLE_MS = 1500
#: How long to try to reach the broker before saying it is unreachable.
BOOTSTRAP_TIMEOUT_MS = 10_000


class ReplayRefused(Exception):
    """A dead letter that must not be replayed as it is (the reason says what to do)."""


@dataclass
class DeadLetterRecord:
    """One message of ``lienthong.deadletter`` with its reason headers unpacked."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def id(self) -> str:
        """``partition:offset`` in the dead-letter topic: how commands name one."""
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", errors="replace")
        return ""

    @property
    def source_topic(self) -> str:
        return self.header("lienthong.source.topic")

    @property
    def source_partition(self) -> int | None:
        raw = self.header("lienthong.source.partition")
        return int(raw) if raw.isdigit() else None

    @property
    def agency(self) -> str:
        """The agency the header names (signed senders), else the one agency of its topic."""
        named = self.header("lienthong.agency")
        if named:
            return named
        owners = {SOURCE_OF_EVENT[t] for t, topic in TOPIC_OF_EVENT.items() if topic == self.source_topic}
        only = next(iter(owners)) if len(owners) == 1 else None
        return only or ""

    @property
    def source(self) -> str:
        where = f"{self.source_topic}/{self.header('lienthong.source.partition')}/{self.header('lienthong.source.offset')}"
        index = self.header("lienthong.source.batch_index")
        return f"{where}#{index}" if index else where

    def summary(self, codec: EventCodec | None = None) -> dict[str, Any]:
        """What ``list --json`` prints per line, and the shape a corrected file is written in."""
        return {
            "id": self.id,
            "time": iso_utc(self.timestamp_ms),
            "agency": self.agency,
            "source": self.source,
            "field": self.header("lienthong.field"),
            "reason": redact(self.header("lienthong.reason")),
            "event": decoded_event(self.value, codec),
        }


# -- reading ----------------------------------------------------------------------
def _consumer(bootstrap: str) -> Any:
    from kafka import KafkaConsumer

    quick = ({"bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS}
             if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG else {})  # kafka-python 3.x
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", consumer_timeout_ms=IDLE_MS,
                         client_id="lienthong-deadletter", **quick, **kafka_python_config())


def _record(message: Any) -> DeadLetterRecord:
    return DeadLetterRecord(message.partition, message.offset, message.timestamp, message.key,
                            bytes(message.value or b""), [(k, bytes(v or b"")) for k, v in message.headers or []])


def read_all(bootstrap: str) -> list[DeadLetterRecord]:
    """Every dead letter, oldest first per partition."""
    from kafka import TopicPartition

    consumer = _consumer(bootstrap)
    try:
        partitions = [TopicPartition(DEADLETTER, p) for p in sorted(consumer.partitions_for_topic(DEADLETTER) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return sorted((_record(m) for m in consumer), key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    finally:
        consumer.close()


def read_one(bootstrap: str, letter_id: str) -> DeadLetterRecord:
    """The dead letter ``partition:offset``; ``KeyError`` if there is none."""
    from kafka import TopicPartition

    partition, offset = parse_id(letter_id)
    consumer = _consumer(bootstrap)
    try:
        where = TopicPartition(DEADLETTER, partition)
        consumer.assign([where])
        consumer.seek(where, offset)
        for message in consumer:
            if message.offset == offset:
                return _record(message)
            if message.offset > offset:
                break
    finally:
        consumer.close()
    raise KeyError(letter_id)


def parse_id(letter_id: str) -> tuple[int, int]:
    partition, sep, offset = letter_id.partition(":")
    if not (sep and partition.isdigit() and offset.isdigit()):
        raise ValueError(f"{letter_id!r} is not a dead-letter id (partition:offset, as `deadletter list` shows)")
    return int(partition), int(offset)


@dataclass(frozen=True)
class Selection:
    """Filters of ``list`` and ``replay``: all given ones must match."""

    agency: str | None = None
    reason: str | None = None
    field: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: DeadLetterRecord) -> bool:
        return ((self.agency is None or letter.agency == self.agency)
                and (self.reason is None or self.reason.lower() in letter.header("lienthong.reason").lower())
                and (self.field is None or letter.header("lienthong.field") == self.field)
                and (self.since_ms is None or letter.timestamp_ms >= self.since_ms)
                and (self.until_ms is None or letter.timestamp_ms < self.until_ms))

    @property
    def empty(self) -> bool:
        return self == Selection()


def time_option(value: str | None, name: str) -> int | None:
    """``--since``/``--until``: ISO 8601 with an offset (or ``Z``) → epoch ms."""
    return None if value is None else parse_time(value, name)


# -- decoding ---------------------------------------------------------------------
def _json_ready(event: dict[str, Any]) -> dict[str, Any]:
    """A decoded event in the agencies' JSON form: times as ISO 8601 UTC strings."""
    out = dict(event)
    time_fields = {"occurred_at"} | {
        f["name"] for f in (payload_fields(str(event.get("event_type"))) if event.get("event_type") in SOURCE_OF_EVENT else [])
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
    }
    for name in time_fields:
        if isinstance(out.get(name), int):
            out[name] = iso_utc(out[name])
    return out


def decoded_event(value: bytes, codec: EventCodec | None = None) -> Any:
    """The message as an event (or a batch's events) where its bytes decode; else None."""
    codec = codec or EventCodec()
    try:
        sv, record = codec.decode_record(value)
        if sv.name == "EventBatch":
            return [_item(codec, item) for item in record["events"]]
        return _json_ready(codec.event_of(sv, record))
    except (ContractError, KeyError, TypeError):
        return None


def _item(codec: EventCodec, item: bytes) -> Any:
    try:
        return _json_ready(codec.decode_item(item))
    except (ContractError, KeyError, TypeError) as exc:
        return {"undecodable": str(exc)}


def describe(letter: DeadLetterRecord, codec: EventCodec | None = None) -> dict[str, Any]:
    """Everything ``show`` prints about one dead letter; ID numbers masked."""
    body = letter.summary(codec)
    body["headers"] = {k: redact(v.decode("utf-8", errors="replace")) for k, v in letter.headers}
    body["key"] = None if letter.key is None else redact(letter.key.decode("utf-8", errors="replace"))
    body["size"] = len(letter.value)
    if body["event"] is None:
        try:
            body["text"] = redact(json.dumps(json.loads(letter.value), ensure_ascii=False))
        except (ValueError, UnicodeDecodeError):
            body["hex"] = redact(letter.value[:256].hex(" ")) + (" …" if len(letter.value) > 256 else "")
    return body


# -- replaying --------------------------------------------------------------------
def lineage(letter: DeadLetterRecord, *, corrected: bool) -> list[tuple[str, bytes]]:
    """The replayed message's headers: the dead letter's own (reason headers moved
    under ``lienthong.replay.*``; a signature dropped if the value was corrected) plus
    where it came from and when it was replayed."""
    kept = [(k, v) for k, v in letter.headers
            if k not in REASON_HEADERS and not k.startswith("lienthong.replay.")
            and not (corrected and k in SIGNATURE_HEADERS)]
    return kept + [
        ("lienthong.replay.of", f"{DEADLETTER}/{letter.partition}/{letter.offset}".encode()),
        ("lienthong.replay.source", letter.source.encode()),
        ("lienthong.replay.reason", letter.header("lienthong.reason").encode()),
        ("lienthong.replay.at", iso_utc(int(time.time() * 1000)).encode()),
        ("lienthong.replay.corrected", b"true" if corrected else b"false"),
    ]


@dataclass
class Replayed:
    letter_id: str
    topic: str
    partition: int


def was_redacted(header: str) -> bool:
    """``lienthong.redacted``: how many ID-shaped values the worker masked (or a yes/no)."""
    value = header.strip().lower()
    return value in ("true", "yes") or (value.isdigit() and int(value) > 0)


def raw_replay(letter: DeadLetterRecord) -> tuple[str, int, bytes | None, bytes]:
    """Where an unchanged dead letter goes back to: its source topic and partition."""
    if was_redacted(letter.header(REDACTED_HEADER)):
        raise ReplayRefused(f"{letter.id}: its value was redacted; replay a corrected file instead (--file)")
    if not letter.source_topic or letter.source_partition is None:
        raise ReplayRefused(f"{letter.id}: no source topic/partition in its headers")
    return letter.source_topic, letter.source_partition, letter.key, letter.value


def corrected_replay(obj: Any, letter: DeadLetterRecord | None, pseudonymiser: Pseudonymiser,
                     codec: EventCodec, partitions: int) -> tuple[str, int, bytes, bytes]:
    """A corrected event (JSON, as ``list --json`` wrote it) encoded for its topic."""
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), dict):
        raise ContractError("event", "each line needs an \"event\" object (a corrected single event)")
    raw = obj["event"]
    agency = raw.get("source") or (letter.agency if letter else "")
    if agency not in SOURCE_OF_EVENT.values():
        raise ContractError("source", "name the agency in event.source")
    event = event_from_json(raw, agency=str(agency), pseudonymiser=pseudonymiser)
    key = partition_key(event)
    return TOPIC_OF_EVENT[event["event_type"]], partition_for(key, partitions), key, codec.encode(event)


def corrected_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of a corrected file; blank lines skipped."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, ContractError("line", f"not JSON ({exc})")


@dataclass
class ReplayReport:
    replayed: list[Replayed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def replay(bootstrap: str, partitions: int, letters: list[DeadLetterRecord], *,
           corrected: list[tuple[int, Any]] | None = None, pseudonymiser: Pseudonymiser | None = None,
           keyring: Keyring | None = None, dry_run: bool = False) -> ReplayReport:
    """Send ``letters`` back unchanged, or the ``corrected`` file's events, with lineage.

    A corrected line names its dead letter by ``id`` (for lineage); ``letters`` then
    holds the dead letters those ids name. A corrected event is signed with its
    agency's key from ``keyring`` (the old signature covered the old bytes); an
    unchanged one keeps the signature it came with. A line or letter that cannot be replayed
    is reported and the others still go; nothing is sent on a dry run.
    """
    from kafka import KafkaProducer

    codec = EventCodec()
    report = ReplayReport()
    by_id = {letter.id: letter for letter in letters}
    sends: list[tuple[str, str, int, bytes | None, bytes, list[tuple[str, bytes]]]] = []
    if corrected is None:
        for letter in letters:
            try:
                topic, partition, key, value = raw_replay(letter)
            except ReplayRefused as exc:
                report.problems.append(str(exc))
                continue
            sends.append((letter.id, topic, partition, key, value, lineage(letter, corrected=False)))
    else:
        for number, obj in corrected:
            named = by_id.get(str(obj.get("id"))) if isinstance(obj, dict) else None
            try:
                if isinstance(obj, ContractError):
                    raise obj
                if pseudonymiser is None:
                    raise ContractError("citizen_id", "no pseudonym key to pseudonymise it")
                topic, partition, key, value = corrected_replay(obj, named, pseudonymiser, codec, partitions)
            except ContractError as exc:
                report.problems.append(f"line {number}: {exc.field}: {redact(exc.reason)}")
                continue
            headers = lineage(named, corrected=True) if named else [("lienthong.replay.corrected", b"true")]
            if keyring:
                agency = codec.decode(value)["source"]
                try:
                    signature = keyring.signing_key(agency).headers(value)
                except ValueError as exc:  # no key for the agency: say so, replay the others
                    report.problems.append(f"line {number}: source: {exc}")
                    continue
                headers = [(k, v) for k, v in headers if k not in SIGNING_HEADERS] + signature
            sends.append((named.id if named else f"line {number}", topic, partition, key, value, headers))
    if dry_run or not sends:
        report.replayed = [Replayed(i, t, p) for i, t, p, *_ in sends]
        return report
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10,
                             client_id="lienthong-deadletter-replay", **kafka_python_config())
    try:
        for letter_id, topic, partition, key, value, headers in sends:
            producer.send(topic, value=value, key=key, partition=partition, headers=headers)
            report.replayed.append(Replayed(letter_id, topic, partition))
        producer.flush(60)
    finally:
        producer.close()
    return report
