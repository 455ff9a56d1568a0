"""The one way agency-side code publishes: ``Publisher.publish(raw)`` pseudonymises,
validates, encodes and produces, in that order.

Events are keyed by dossier or citizen (``schemas.contracts.partition_key``) so one
subject's events keep their order. For throughput, :class:`Publisher` can group
events bound for the same partition into one ``EventBatch`` message; it computes
the partition exactly as Kafka's default partitioner would for the event's key,
so a batch never mixes partitions and per-partition dedupe stays valid.

Every message is signed with its agency's key (``schemas.signing``): a batch only
ever holds one agency's events, so one signature proves the sender of all of them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaProducer

from hubbase.kafka_security import kafka_python_config
from hubbase.logs import get_logger
from hubbase.settings import Settings
from schemas.codec import EventCodec
from schemas.contracts import HEARTBEAT, NOT_ABOUT_A_CITIZEN, TOPIC_OF_EVENT, partition_key
from schemas.partitioning import partition_for
from schemas.pseudonym import Pseudonymiser
from schemas.signing import Keyring
from schemas.topics import HEARTBEATS
from schemas.validation import validate

log = get_logger(__name__)


def check_connector_secrets(settings: Settings, service: str, agencies: Iterable[str]) -> None:
    """Refuse to start a connector without the pseudonym key or its agencies' signing keys.

    Raises ``MissingSecret`` or ``KeyringError`` with a message naming the setting.
    Signing keys are not needed where the hub runs with verification off
    (``LIENTHONG_VERIFY_SIGNATURES=false``).
    """
    settings.require_pseudonym_key(service)
    if settings.verify_signatures:
        keyring = settings.keyring()
        for agency in agencies:
            keyring.signing_key(agency)


def now_ms() -> int:
    return int(time.time() * 1000)


class ValidEvent(dict[str, Any]):
    """An event :func:`prepare` made: pseudonymised, with an id, validated.

    :meth:`Publisher.publish` takes one as it is, so a reader that checks records
    before publishing them (CSV rows, gateway requests, outbox rows: each refused
    record is reported) does not pay for a second validation. Anything else given
    to ``publish`` is prepared there.
    """


def prepare(raw: Mapping[str, Any], pseudonymiser: Pseudonymiser | None, *,
            source: str | None = None) -> ValidEvent:
    """A raw agency record as a valid event: pseudonymised, with an id, validated.

    A raw ``citizen_id`` is replaced by its pseudonym here, the only place the raw
    number is handled, and is never kept.
    """
    event = dict(raw)
    citizen_id = event.pop("citizen_id", None)
    if citizen_id not in (None, ""):
        if pseudonymiser is None:
            raise ValueError("a raw citizen_id needs a pseudonymiser")
        event["citizen_ref"] = pseudonymiser.ref(str(citizen_id))
    if source is not None and not event.get("source"):
        event["source"] = source
    event.setdefault("event_id", str(uuid.uuid4()))
    event.setdefault("correlation_id", None)
    if event.get("event_type") in NOT_ABOUT_A_CITIZEN:  # a heartbeat: no ward, no citizen
        event.setdefault("ward_code", "")
        event.setdefault("citizen_ref", "")
    return ValidEvent(validate(event))


class Publisher:
    """Produces events with kafka-python (acks=all, retries), optionally batched.

    ``batch_size=1`` sends each event as its own message (what an agency system
    would do live); a larger size groups per partition for backfills.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        connector: str,
        batch_size: int = 1,
        heartbeat_source: str | None = None,
        heartbeat_interval: float = 0.0,
        codec: EventCodec | None = None,
        producer: KafkaProducer | None = None,
        linger: float = 0.5,
        keyring: Keyring | None = None,
        pseudonymiser: Pseudonymiser | None = None,
    ) -> None:
        self.connector = connector
        #: Replaces a raw ``citizen_id`` by its pseudonym in :meth:`publish`; None: a raw ID is refused.
        self.pseudonymiser = pseudonymiser
        settings = Settings.from_env()
        #: Signs every message; an empty keyring (verification off) sends unsigned messages.
        self.keyring = keyring if keyring is not None else settings.keyring()
        self.batch_size = max(1, batch_size)
        # Confluent framing when a schema registry is configured, else single-object encoding
        self.codec = codec or EventCodec.for_registry_url(settings.schema_registry_url)
        self.producer = producer or KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            retries=10,
            linger_ms=5,
            batch_size=512 * 1024,
            max_request_size=8 * 1024 * 1024,
            max_in_flight_requests_per_connection=1,
            client_id=f"lienthong-{connector}",
            **kafka_python_config(),
        )
        self.sent_total = 0
        #: A batch never waits longer than this for more events: a rare event type
        #: must not sit in a half-full batch while the traffic is light.
        self.linger = linger
        self._last_batch_send = time.monotonic()
        self._pending: dict[tuple[str, int, str], list[bytes]] = defaultdict(list)
        self._partitions: dict[str, int] = {}
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._heartbeat_source = heartbeat_source
        self._stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        if heartbeat_source and heartbeat_interval > 0:
            self._heartbeat_thread = threading.Thread(
                target=self._beat, args=(heartbeat_interval,), daemon=True, name="heartbeat"
            )
            self._heartbeat_thread.start()

    def partitions_of(self, topic: str) -> int:
        if topic not in self._partitions:
            deadline = time.monotonic() + 30
            parts = self.producer.partitions_for(topic)
            while not parts and time.monotonic() < deadline:
                time.sleep(0.2)
                parts = self.producer.partitions_for(topic)
            if not parts:
                raise RuntimeError(f"topic {topic} does not exist")
            self._partitions[topic] = len(parts)
        return self._partitions[topic]

    def publish(self, raw: Mapping[str, Any], *, on_sent: Callable[[], None] | None = None) -> ValidEvent:
        """Pseudonymise, validate and queue one record; returns the event as published.

        Raises ``ContractError`` (nothing queued) for a record that breaks its contract.
        A :class:`ValidEvent` (from :func:`prepare`) is published as it is.
        """
        event = raw if isinstance(raw, ValidEvent) else prepare(raw, self.pseudonymiser)
        topic = TOPIC_OF_EVENT[event["event_type"]]
        key = partition_key(event)
        encoded = self.codec.encode(event, check=False)
        with self._lock:
            self.sent_total += 1
            if self.batch_size == 1:
                fut = self.producer.send(topic, value=encoded, key=key, headers=self.signed(event["source"], encoded))
                fut.add_errback(self._errors.append)
                return event
            partition = partition_for(key, self.partitions_of(topic))
            where = (topic, partition, event["source"])
            pending = self._pending[where]
            pending.append(encoded)
            if len(pending) >= self.batch_size:
                self._send_batch(where)
            if time.monotonic() - self._last_batch_send >= self.linger:
                self._send_pending()
        return event

    def signed(self, agency: str, value: bytes) -> list[tuple[str, bytes]] | None:
        """The headers proving ``agency`` sent ``value`` (none when no keys are configured)."""
        if not self.keyring:
            return None
        return self.keyring.signing_key(agency).headers(value)

    def _send_pending(self) -> None:
        for where in list(self._pending):
            self._send_batch(where)
        self._last_batch_send = time.monotonic()

    def _send_batch(self, where: tuple[str, int, str]) -> None:
        events = self._pending.pop(where, [])
        if events:
            topic, partition, agency = where
            value = self.codec.encode_batch(events)
            fut = self.producer.send(topic, value=value, key=b"batch", partition=partition,
                                     headers=self.signed(agency, value))
            fut.add_errback(self._errors.append)

    def flush(self, timeout: float = 60.0) -> None:
        """Send what is queued and wait for every acknowledgement (acks=all)."""
        with self._lock:
            self._send_pending()
        self.producer.flush(timeout)
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"{len(errors)} events were not acknowledged: {errors[0]!r}")

    def heartbeat(self) -> None:
        if not self._heartbeat_source:
            return
        beat = prepare(
            {
                "event_type": HEARTBEAT,
                "source": self._heartbeat_source,
                "occurred_at": now_ms(),
                "connector": self.connector,
                "sent_total": self.sent_total,
            },
            None,
        )
        encoded = self.codec.encode(beat)
        self.producer.send(HEARTBEATS, value=encoded, key=self.connector.encode(),
                           headers=self.signed(self._heartbeat_source, encoded))

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    self._send_pending()  # quiet spells: do not hold a half-full batch
                self.heartbeat()
            except Exception as exc:  # a heartbeat must never kill the connector
                log.warning("heartbeat_failed", error=str(exc))

    def close(self) -> None:
        self._stop.set()
        try:
            self.heartbeat()
            self.flush()
        finally:
            self.producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
