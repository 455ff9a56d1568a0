"""What counts as shaped like a personal ID number, and how it is masked."""

from __future__ import annotations

import pytest

from schemas.personal_ids import has_id, ids_in_bytes, mask_bytes, mask_text, redact_value

RAW = "079200001234"


@pytest.mark.parametrize("text", [RAW, f"ref {RAW} at counter", f"CCCD-{RAW}", f"x{RAW}", f"{RAW}.", f"ab{RAW}cd"])
def test_twelve_digits_not_part_of_a_longer_number_are_an_id(text: str) -> None:
    assert has_id(text)
    assert RAW not in mask_text(text) and "[REDACTED-ID]" in mask_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "0792000012345",  # 13 digits
        "07920000123",  # 11 digits
        "6f1c2d3e-4b5a-4c7d-8e9f-123456789012",  # a UUID whose last group is all digits
        "b29ab5f1f12b86ca25e1873ca5012ff0fbd451a600801222430fd0ae0d9011ff",  # a SHA-256 / pseudonym
        "HS-2024-000001",
    ],
)
def test_longer_numbers_uuids_and_digests_are_not_ids(text: str) -> None:
    assert not has_id(text)
    assert mask_text(text) == text


def test_an_id_beside_a_digest_is_still_found() -> None:
    digest = "b29ab5f1f12b86ca25e1873ca5012ff0fbd451a600801222430fd0ae0d9011ff"
    assert mask_text(f"{digest} {RAW}") == f"{digest} [REDACTED-ID]"


def test_bytes_are_masked_in_place_keeping_their_length() -> None:
    data = b"\x00\x18" + RAW.encode() + b"\xff"
    masked, found = mask_bytes(data)
    assert (len(masked), found, ids_in_bytes(masked)) == (len(data), 1, [])


def test_an_exact_id_becomes_its_pseudonym_and_other_text_is_masked() -> None:
    record = {"citizen_ref": RAW, "nested": [{"reason": f"no card for {RAW}"}], "n": 5}
    clean, found = redact_value(record, lambda raw: "p" * 64)
    assert found == 2
    assert clean == {"citizen_ref": "p" * 64, "nested": [{"reason": "no card for [REDACTED-ID]"}], "n": 5}
