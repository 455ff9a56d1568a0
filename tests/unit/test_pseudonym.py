"""The pseudonymiser: stable, keyed, and never the raw number."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import ContractError
from schemas.pseudonym import Pseudonymiser

KEY = b"pseudonym-test-key-01"
ids = st.from_regex(r"\A[0-9]{12}\Z")


@given(ids)
def test_same_key_same_number_same_ref(citizen_id: str) -> None:
    assert Pseudonymiser(KEY).ref(citizen_id) == Pseudonymiser(KEY).ref(citizen_id)


@given(ids)
def test_ref_is_64_lowercase_hex(citizen_id: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", Pseudonymiser(KEY).ref(citizen_id))


@given(ids)
def test_a_different_key_gives_a_different_ref(citizen_id: str) -> None:
    assert Pseudonymiser(KEY).ref(citizen_id) != Pseudonymiser(KEY + b"x").ref(citizen_id)


@given(ids)
def test_ref_is_not_the_unkeyed_hash(citizen_id: str) -> None:
    assert Pseudonymiser(KEY).ref(citizen_id) != hashlib.sha256(citizen_id.encode()).hexdigest()


@given(ids)
def test_ref_never_contains_the_raw_number(citizen_id: str) -> None:
    assert citizen_id not in Pseudonymiser(KEY).ref(citizen_id)


@given(ids, ids)
def test_different_numbers_give_different_refs(a: str, b: str) -> None:
    if a != b:
        assert Pseudonymiser(KEY).ref(a) != Pseudonymiser(KEY).ref(b)


@pytest.mark.parametrize("bad", ["", "12345678901", "1234567890123", "07920100000A", "0792 0100 0001", "٠٧٩٢٠١٠٠٠٠٠١"])
def test_refuses_anything_but_12_ascii_digits(bad: str) -> None:
    with pytest.raises(ContractError) as caught:
        Pseudonymiser(KEY).ref(bad)
    assert caught.value.field == "citizen_id"


def test_refuses_a_short_key() -> None:
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")


def test_repr_never_shows_the_key() -> None:
    assert KEY.decode() not in repr(Pseudonymiser(KEY))
