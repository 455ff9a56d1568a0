"""Fuzz: whatever bytes arrive on a topic, decoding fails only with ``ContractError``.

The stream dead-letters a ``ContractError`` and goes on; any other exception
would stop a worker on one bad message, which the guarantees forbid.
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
