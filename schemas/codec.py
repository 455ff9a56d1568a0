"""Avro single-object encoding of events and event batches.

Wire format (Avro spec, "single-object encoding"): ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form, then
the Avro binary body. A reader looks the fingerprint up among every released
version, so no registry service is needed and old messages stay readable.

Where a Confluent schema registry is configured, pass ``confluent=`` (see
``schemas.confluent``) and messages are written with Confluent framing instead;
decoding always accepts both framings, told apart by the first byte.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import confluent as cf
from schemas.errors import ContractError
from schemas.registry import SchemaRegistry, SchemaVersion, default_registry
from schemas.validation import ENVELOPE_FIELDS, Event, validate

MARKER = b"\xc3\x01"
HEADER_LEN = 10


@dataclass(frozen=True)
class Refused:
    """Bytes the hub will not take, and why: a whole message, or one item of a batch."""

    value: bytes
    error: ContractError
    #: The item's index in its batch; None: the whole message was refused.
    batch_index: int | None = None


@dataclass
class Decoded:
    """A Kafka message value under the per-item policy (:meth:`EventCodec.decode_each`)."""

    events: list[Event] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    #: Each valid event's index in its batch; None: the message was not a batch.
    indexes: list[int] | None = None


class EventCodec:
    """Encodes and decodes events; one instance per process is enough."""

    def __init__(
        self, registry: SchemaRegistry | None = None, confluent: cf.ConfluentFraming | None = None
    ) -> None:
        self.registry = registry or default_registry()
        #: Write Confluent framing through this registry client; ``None``: single-object.
        self.confluent = confluent
        self._batch = self.registry.latest("EventBatch")
        #: fastavro schemas parsed once, by fingerprint. ``SchemaVersion.wire`` is
        #: parsed without fastavro's "already parsed" hint, so handing it to the
        #: reader or writer re-parses it on every call (4x the cost of the body).
        self._parsed: dict[bytes, Any] = {}

    def _wire(self, sv: SchemaVersion) -> Any:
        parsed = self._parsed.get(sv.fingerprint)
        if parsed is None:
            parsed = self._parsed[sv.fingerprint] = parse_schema(sv.wire)
        return parsed

    @classmethod
    def for_registry_url(cls, url: str, registry: SchemaRegistry | None = None) -> EventCodec:
        """The codec a process should use given ``LIENTHONG_SCHEMA_REGISTRY_URL`` (may be empty)."""
        reg = registry or default_registry()
        return cls(reg, cf.framing_from_url(url, reg))

    # -- encoding -------------------------------------------------------------
    def encode(self, event: Event, *, check: bool = True) -> bytes:
        """One event, latest schema of its type; validated first unless ``check=False``."""
        if check:
            validate(event, self.registry)
        sv = self.registry.latest(event["event_type"])
        record = self._to_record(event, sv)
        return self._frame(sv, record)

    def encode_batch(self, encoded_events: Iterable[bytes]) -> bytes:
        """Events already single-object encoded, wrapped as one ``EventBatch``."""
        record = {"batch_id": str(uuid.uuid4()), "events": list(encoded_events)}
        return self._frame(self._batch, record)

    def encode_record(self, name: str, record: dict[str, Any]) -> bytes:
        """Any other contract (e.g. ``Flag``), by name."""
        return self._frame(self.registry.latest(name), record)

    def _frame(self, sv: SchemaVersion, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        if self.confluent is not None:
            out.write(self.confluent.header(sv))
        else:
            out.write(MARKER)
            out.write(sv.fingerprint)
        try:
            schemaless_writer(out, self._wire(sv), record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ContractError(_field_of(exc), str(exc), sv.name) from None
        return out.getvalue()

    @staticmethod
    def _to_record(event: Event, sv: SchemaVersion) -> dict[str, Any]:
        envelope = {name: event.get(name) for name in ENVELOPE_FIELDS}
        record: dict[str, Any] = {"envelope": envelope}
        for name in sv.payload_fields:
            if name in event:
                record[name] = event[name]
        return record

    # -- decoding -------------------------------------------------------------
    def schema_of(self, data: bytes) -> SchemaVersion:
        """The released version that wrote ``data``, from either framing."""
        return self._writer(data)[0]

    def _writer(self, data: bytes) -> tuple[SchemaVersion, int]:
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise ContractError("message", "empty or not bytes")
        if data[0] == cf.MAGIC:
            if self.confluent is None:
                raise ContractError("message", "Confluent framing, but no schema registry is configured")
            return self.confluent.writer_of(bytes(data)), cf.HEADER_LEN
        if len(data) < HEADER_LEN:
            raise ContractError("message", "too short for Avro single-object encoding")
        if data[:2] != MARKER:
            raise ContractError("message", "missing the Avro single-object marker C3 01")
        sv = self.registry.by_fingerprint.get(bytes(data[2:HEADER_LEN]))
        if sv is None:
            raise ContractError("fingerprint", f"unknown writer schema {bytes(data[2:HEADER_LEN]).hex()}")
        return sv, HEADER_LEN

    def decode_record(self, data: bytes) -> tuple[SchemaVersion, dict[str, Any]]:
        sv, header_len = self._writer(data)
        return sv, self._read_body(sv, data, header_len)

    def _read_body(self, sv: SchemaVersion, data: bytes, header_len: int) -> dict[str, Any]:
        """The record after the framing header; the whole message must be that record."""
        buf = io.BytesIO(data)
        buf.seek(header_len)
        try:
            record = schemaless_reader(buf, self._wire(sv), None)
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types on corrupt bodies
            raise ContractError("body", f"undecodable {sv.name} body: {type(exc).__name__}", sv.name) from None
        if buf.tell() != len(data):
            raise ContractError("body", f"{len(data) - buf.tell()} trailing bytes after the record", sv.name)
        assert isinstance(record, dict)  # every contract is an Avro record
        return record

    def rewrite(self, data: bytes, record: dict[str, Any]) -> bytes:
        """``data`` with its record replaced by ``record``, same writer schema and framing.

        For cleaning a refused message (``streams.redaction``) without changing
        which schema, or which framing, it claims to be written with.
        """
        sv, header_len = self._writer(data)
        out = io.BytesIO()
        out.write(bytes(data[:header_len]))
        try:
            schemaless_writer(out, self._wire(sv), record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ContractError(_field_of(exc), str(exc), sv.name) from None
        return out.getvalue()

    def decode_item(self, data: bytes) -> Event:
        """One single-object event of a batch, as :meth:`decode` gives it, for the worker.

        A worker decodes every event of every batch here, so a known single-object
        fingerprint is looked up directly, without :meth:`_writer`'s checks of
        every framing. Confluent-framed items and anything odd take the general
        path, with its errors.
        """
        sv = self.registry.by_fingerprint.get(data[2:HEADER_LEN]) if data[:2] == MARKER else None
        if sv is None or sv.name == "EventBatch":
            return self.decode(data)
        return self.event_of(sv, self._read_body(sv, data, HEADER_LEN))

    def decode(self, data: bytes) -> Event:
        """One event from a single-event message."""
        sv, record = self.decode_record(data)
        if sv.name == "EventBatch":
            raise ContractError("message", "is a batch; use decode_message")
        return self.event_of(sv, record)

    def decode_each(self, data: bytes, check: Callable[[Event], Event] | None = None) -> Decoded:
        """The hub's one decoding policy: a batch's items stand or fall one by one.

        A message that is not readable as a whole (framing, fingerprint, body) is
        refused whole: there is nothing to take from it. A single event is taken
        or refused. In an ``EventBatch``, each item is decoded and ``check``-ed
        (say, validated) on its own: the valid ones are taken, each bad one is
        refused with its index, so one bad record never holds back its batch. The
        worker dead-letters exactly what is refused here (``streams.processor``).
        """
        try:
            sv, record = self.decode_record(data)
        except ContractError as exc:
            return Decoded(refused=[Refused(data, exc)])
        if sv.name != "EventBatch":
            try:
                event = self.event_of(sv, record)
                return Decoded(events=[check(event) if check is not None else event])
            except ContractError as exc:
                return Decoded(refused=[Refused(data, exc)])
        indexes: list[int] = []
        decoded = Decoded(indexes=indexes)
        events, refused = decoded.events, decoded.refused
        decode_item = self.decode_item
        for index, item in enumerate(record["events"]):
            try:
                event = decode_item(item)
                events.append(check(event) if check is not None else event)
                indexes.append(index)
            except ContractError as exc:
                refused.append(Refused(item, exc, index))
        return decoded

    def decode_message(self, data: bytes) -> list[Event]:
        """All events of a message that must be whole (a reader's check): :meth:`decode_each`,
        raising the first refusal, an item's field named ``events[<index>].<field>``."""
        decoded = self.decode_each(data)
        if decoded.refused:
            first = decoded.refused[0]
            exc = first.error
            if first.batch_index is None:
                raise exc
            raise ContractError(f"events[{first.batch_index}].{exc.field}", exc.reason, exc.event_type) from None
        return decoded.events

    def event_of(self, sv: SchemaVersion, record: dict[str, Any]) -> Event:
        """A decoded record of an event schema as a flat event (envelope merged, ``event_type`` set)."""
        if sv.name in ("Envelope", "Flag"):
            raise ContractError("message", f"a {sv.name} is not an event")
        event: Event = record.pop("envelope")
        event.update(record)
        event["event_type"] = sv.name
        return event


def _field_of(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("field ", "Field("):
        if marker in text:
            return text.split(marker, 1)[1].split()[0].strip("'\"(),")
    return "record"
