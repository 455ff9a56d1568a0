"""Fuzz: whatever bytes arrive on a topic, decoding fails only with ``ContractError``.

The stream dead-letters a ``ContractError`` and goes on; any other exception
would stop a worker on one bad message, which the guarantees forbid. The worker
decodes with :meth:`EventCodec.decode_each` (per item), which never raises at all:
every refusal comes back as a ``Refused`` with its ``ContractError``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import MARKER, EventCodec
from schemas.errors import ContractError
from schemas.registry import default_registry
from tests.unit.test_codec_properties import events

CODEC = EventCodec()
FINGERPRINTS = sorted(default_registry().by_fingerprint)


def _decode_or_contract_error(data: bytes) -> None:
    decoded = CODEC.decode_each(data)  # never raises: refusals are returned
    assert all(isinstance(r.error, ContractError) for r in decoded.refused)
    assert decoded.events or decoded.refused
    try:
        CODEC.decode_message(data)
    except ContractError:
        pass


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_contract_errors(data: bytes) -> None:
    _decode_or_contract_error(data)


@settings(max_examples=1500)
@given(st.sampled_from(FINGERPRINTS), st.binary(max_size=120))
def test_random_body_after_a_known_fingerprint_raises_only_contract_errors(
    fingerprint: bytes, body: bytes
) -> None:
    _decode_or_contract_error(MARKER + fingerprint + body)


@settings(max_examples=200)
@given(st.lists(events(), min_size=1, max_size=3), st.data())
def test_truncated_valid_messages_raise_contract_error(batch: list[dict[str, Any]], data: st.DataObject) -> None:
    encoded = [CODEC.encode(e) for e in batch]
    message = data.draw(st.sampled_from([encoded[0], CODEC.encode_batch(encoded)]))
    cut = data.draw(st.integers(0, len(message) - 1))
    with pytest.raises(ContractError):
        CODEC.decode_message(message[:cut])


@settings(max_examples=200)
@given(events(), st.binary(min_size=1, max_size=16))
def test_trailing_bytes_after_a_valid_event_raise_contract_error(event: dict[str, Any], extra: bytes) -> None:
    with pytest.raises(ContractError, match="trailing"):
        CODEC.decode_message(CODEC.encode(event) + extra)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_a_batch_of_garbage_items_raises_contract_error_naming_the_item(items: list[bytes]) -> None:
    with pytest.raises(ContractError) as caught:
        CODEC.decode_message(CODEC.encode_batch(items))
    assert caught.value.field.startswith("events[")


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_each_garbage_item_of_a_batch_is_refused_on_its_own_with_its_index(items: list[bytes]) -> None:
    decoded = CODEC.decode_each(CODEC.encode_batch(items))
    assert decoded.events == [] and decoded.indexes == []
    assert [(r.value, r.batch_index) for r in decoded.refused] == [(item, i) for i, item in enumerate(items)]


@settings(max_examples=200)
@given(st.lists(events(), min_size=1, max_size=4), st.lists(st.binary(max_size=40), min_size=1, max_size=3),
       st.randoms(use_true_random=False))
def test_valid_items_of_a_batch_are_taken_whatever_garbage_sits_beside_them(
    batch: list[dict[str, Any]], garbage: list[bytes], rng: Any
) -> None:
    items = [(CODEC.encode(e), True) for e in batch] + [(g, False) for g in garbage]
    rng.shuffle(items)
    decoded = CODEC.decode_each(CODEC.encode_batch(value for value, _ in items))
    assert decoded.indexes == [i for i, (_, good) in enumerate(items) if good]
    assert len(decoded.events) == len(batch)
    assert sorted(r.batch_index for r in decoded.refused if r.batch_index is not None) == [
        i for i, (_, good) in enumerate(items) if not good
    ]


@settings(max_examples=200)
@given(st.lists(events(), min_size=1, max_size=3), st.data())
def test_a_truncated_message_is_refused_whole(batch: list[dict[str, Any]], data: st.DataObject) -> None:
    encoded = [CODEC.encode(e) for e in batch]
    message = data.draw(st.sampled_from([encoded[0], CODEC.encode_batch(encoded)]))
    cut = data.draw(st.integers(0, len(message) - 1))
    decoded = CODEC.decode_each(message[:cut])
    assert decoded.events == []
    assert [(r.value, r.batch_index) for r in decoded.refused] == [(message[:cut], None)]
