"""``Publisher.publish(raw)``: one call pseudonymises, validates, encodes and queues (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.sdk import Publisher, prepare
from connectors.simulator import generate_city
from schemas.codec import EventCodec
from schemas.errors import ContractError
from schemas.pseudonym import Pseudonymiser
from schemas.signing import Keyring

KEY = Pseudonymiser(b"unit-test-key-0123456789abcdef")
START = 1_717_200_000_000
CODEC = EventCodec()


class _Future:
    def add_errback(self, callback: Any) -> None:
        pass


class RecordingProducer:
    """Stands in for kafka-python's producer: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, **message: Any) -> _Future:
        self.sent.append({"topic": topic, **message})
        return _Future()


def _publisher(pseudonymiser: Pseudonymiser | None = KEY) -> tuple[Publisher, RecordingProducer]:
    producer = RecordingProducer()
    publisher = Publisher("127.0.0.1:1", connector="test", producer=producer,  # type: ignore[arg-type]
                          keyring=Keyring([]), pseudonymiser=pseudonymiser)
    return publisher, producer


def _card() -> dict[str, Any]:
    return next(dict(r) for r in generate_city(seed=1, start_ms=START, days=2, events=200)
                if r["event_type"] == "IdCardIssued")


def test_a_raw_record_is_published_pseudonymised_and_the_raw_id_never_leaves():
    publisher, producer = _publisher()
    raw = _card()
    published = publisher.publish(raw)
    (message,) = producer.sent
    assert raw["citizen_id"].encode() not in message["value"]
    assert published["citizen_ref"] == KEY.ref(raw["citizen_id"])
    assert CODEC.decode(message["value"])["citizen_ref"] == published["citizen_ref"]
    assert message["topic"] == "lienthong.identity"


def test_a_record_that_breaks_its_contract_is_refused_and_nothing_is_queued():
    publisher, producer = _publisher()
    with pytest.raises(ContractError) as caught:
        publisher.publish({**_card(), "ward_code": "99999"})
    assert caught.value.field == "ward_code"
    assert producer.sent == []


def test_a_raw_id_without_a_pseudonymiser_is_refused():
    publisher, producer = _publisher(pseudonymiser=None)
    with pytest.raises(ValueError, match="pseudonymiser"):
        publisher.publish(_card())
    assert producer.sent == []


def test_a_prepared_event_is_published_as_it_is():
    publisher, producer = _publisher(pseudonymiser=None)
    event = prepare(_card(), KEY)
    assert publisher.publish(event) is event
    assert CODEC.decode(producer.sent[0]["value"]) == event
