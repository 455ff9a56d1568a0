"""Agency keys: the keyring's rules, and what each kind of bad signature is refused as."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.errors import ContractError
from schemas.signing import KeyringError, generate_keyring_file, load_keyring, parse_keyring
from tests.trust_samples import KEYRING

VALUE = b"\xc3\x01some message bytes"
SECRET = "s" * 32


def test_a_message_signed_with_the_agencys_key_proves_the_agency_and_key_id() -> None:
    proof = KEYRING.verify(VALUE, KEYRING.signing_key("LABOUR").headers(VALUE))
    assert (proof.agency, proof.key_id) == ("LABOUR", "labour-test-1")


def test_an_unsigned_message_is_refused_naming_the_missing_headers() -> None:
    with pytest.raises(ContractError, match="unsigned message: missing header") as caught:
        KEYRING.verify(VALUE, [])
    assert caught.value.field == "signature"


def test_a_message_changed_after_signing_is_refused_as_a_wrong_signature() -> None:
    headers = KEYRING.signing_key("LABOUR").headers(VALUE)
    with pytest.raises(ContractError, match="wrong signature for key labour-test-1"):
        KEYRING.verify(VALUE + b"x", headers)


def test_an_unknown_key_id_is_refused() -> None:
    headers = [(n, b"retired-key" if n == "lienthong.key_id" else v) for n, v in KEYRING.signing_key("LABOUR").headers(VALUE)]
    with pytest.raises(ContractError, match="unknown key id 'retired-key'"):
        KEYRING.verify(VALUE, headers)


def test_a_key_cannot_speak_for_another_agency() -> None:
    headers = [(n, b"POLICE" if n == "lienthong.agency" else v) for n, v in KEYRING.signing_key("LABOUR").headers(VALUE)]
    with pytest.raises(ContractError, match="belongs to LABOUR"):
        KEYRING.verify(VALUE, headers)


def test_during_a_rotation_both_key_ids_verify_and_the_last_listed_signs() -> None:
    config = {"police-old": {"agency": "POLICE", "secret": "o" * 32}, "police-new": {"agency": "POLICE", "secret": "n" * 32}}
    ring = parse_keyring(config)
    assert ring.signing_key("POLICE").key_id == "police-new"
    old_only = parse_keyring({"police-old": config["police-old"]})
    signed_before = old_only.signing_key("POLICE").headers(VALUE)
    assert ring.verify(VALUE, signed_before).key_id == "police-old"
    assert ring.verify(VALUE, ring.signing_key("POLICE").headers(VALUE)).key_id == "police-new"


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({}, "must be a JSON object"),
        ({"k": {"agency": "MAYOR", "secret": SECRET}}, "'MAYOR' is not an agency"),
        ({"k": {"agency": "POLICE", "secret": "short"}}, "at least 32 characters"),
        ({"k": {"agency": "POLICE"}}, "exactly agency and secret"),
    ],
)
def test_a_bad_keyring_is_refused_with_its_reason(config: object, reason: str) -> None:
    with pytest.raises(KeyringError, match=reason):
        parse_keyring(config)


def test_no_error_or_repr_ever_shows_a_secret(tmp_path: Path) -> None:
    ring = parse_keyring({"k": {"agency": "POLICE", "secret": SECRET}})
    assert SECRET not in repr(ring) + repr(ring.keys["k"])
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"k": {"agency": "POLICE", "secret": SECRET}})[:-3])
    with pytest.raises(KeyringError) as caught:
        load_keyring(str(path))
    assert SECRET not in str(caught.value)


def test_generated_keys_are_one_per_agency_private_and_kept(tmp_path: Path) -> None:
    path = generate_keyring_file(tmp_path / "signing-keys.json")
    assert path.stat().st_mode & 0o077 == 0
    first = path.read_text()
    generate_keyring_file(path)
    assert path.read_text() == first
    assert len(load_keyring(str(path)).keys) == 6


def test_library_log_records_and_nested_values_are_scrubbed_of_id_numbers(caplog: pytest.LogCaptureFixture) -> None:
    import io
    import logging

    from hubbase import logs

    stream = io.StringIO()
    logs.configure("INFO", stream)
    logging.getLogger("aiokafka.consumer").warning("failed on %r", b"ref 079200001234 here")
    logs.get_logger("test").info("nested", rows=[{"citizen": "079200001234"}], raw=b"079200001234")
    text = stream.getvalue() + caplog.text
    assert "079200001234" not in text and text.count("[REDACTED-ID]") >= 3
