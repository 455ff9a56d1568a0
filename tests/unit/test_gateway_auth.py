"""Which agency sent a gateway request: tokens, signatures, and refusing everything else."""

from __future__ import annotations

import json
import re

import pytest

from connectors.gateway import (
    Authenticator,
    CredentialsError,
    ReplayGuard,
    Unauthorized,
    load_credentials,
    parse_credentials,
    signature_headers,
)

POLICE_TOKEN = "police-token-0123456789"
HEALTH_TOKEN = "health-token-0123456789"
JUSTICE_SECRET = "justice-secret-0123456789"
BODY = b'{"event_type": "BirthRegistered"}'


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(parse_credentials({
        "POLICE": {"token": POLICE_TOKEN},
        "HEALTH": {"token": HEALTH_TOKEN},
        "JUSTICE": {"secret": JUSTICE_SECRET},
        "LABOUR": {"token": "labour-token-0123456789", "secret": "labour-secret-0123456789"},
    }))


def test_bearer_token_identifies_its_agency(auth):
    assert auth.authenticate({"Authorization": f"Bearer {HEALTH_TOKEN}"}, BODY) == "HEALTH"


def test_unknown_token_is_refused(auth):
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.authenticate({"Authorization": "Bearer not-a-known-token-at-all"}, BODY)


def test_request_without_credentials_is_refused(auth):
    with pytest.raises(Unauthorized, match="Bearer"):
        auth.authenticate({}, BODY)


def test_non_bearer_scheme_is_refused(auth):
    with pytest.raises(Unauthorized, match="Bearer <token>"):
        auth.authenticate({"Authorization": f"Basic {POLICE_TOKEN}"}, BODY)


def test_token_cannot_claim_another_agency(auth):
    with pytest.raises(Unauthorized, match="does not match"):
        auth.authenticate({"Authorization": f"Bearer {POLICE_TOKEN}", "X-Lienthong-Agency": "HEALTH"}, BODY)


def test_signed_body_identifies_its_agency(auth):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY)
    assert auth.authenticate(headers, BODY) == "JUSTICE"


def test_signature_of_an_altered_body_is_refused(auth):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY)
    with pytest.raises(Unauthorized, match="invalid signature"):
        auth.authenticate(headers, BODY + b" ")


def test_signature_with_another_agencys_secret_is_refused(auth):
    headers = signature_headers("JUSTICE", "labour-secret-0123456789", BODY)
    with pytest.raises(Unauthorized, match="invalid signature"):
        auth.authenticate(headers, BODY)


def test_signature_without_agency_header_is_refused(auth):
    with pytest.raises(Unauthorized, match="X-Lienthong-Agency"):
        headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY)
        del headers["X-Lienthong-Agency"]
        auth.authenticate(headers, BODY)


def test_agency_with_a_secret_must_sign_even_with_its_token(auth):
    with pytest.raises(Unauthorized, match="must sign"):
        auth.authenticate({"Authorization": "Bearer labour-token-0123456789"}, BODY)


def test_agency_with_token_and_secret_is_accepted_with_both(auth):
    headers = {"Authorization": "Bearer labour-token-0123456789",
               **signature_headers("LABOUR", "labour-secret-0123456789", BODY)}
    assert auth.authenticate(headers, BODY) == "LABOUR"


def test_inline_json_credentials_are_loaded():
    creds = load_credentials(json.dumps({"PORTAL": {"token": "portal-token-0123456789"}}))
    assert creds["PORTAL"].token == "portal-token-0123456789"


def test_credentials_file_is_loaded(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"PORTAL": {"secret": "portal-secret-0123456789"}}))
    assert load_credentials(path)["PORTAL"].secret == "portal-secret-0123456789"


def test_short_token_is_refused_without_quoting_it():
    with pytest.raises(CredentialsError, match="at least 16") as info:
        parse_credentials({"POLICE": {"token": "short-tok"}})
    assert "short-tok" not in str(info.value)


def test_unknown_agency_in_credentials_is_refused():
    with pytest.raises(CredentialsError, match="not an agency"):
        parse_credentials({"TAX": {"token": "tax-token-0123456789"}})


def test_token_shared_by_two_agencies_is_refused():
    with pytest.raises(CredentialsError, match="shared"):
        parse_credentials({"POLICE": {"token": POLICE_TOKEN}, "HEALTH": {"token": POLICE_TOKEN}})


def test_credential_repr_hides_the_secret():
    creds = parse_credentials({"POLICE": {"token": POLICE_TOKEN}})
    assert POLICE_TOKEN not in repr(creds)


# -- no replay ------------------------------------------------------------------
NOW = 1_780_000_000.0


@pytest.fixture
def clocked() -> Authenticator:
    return Authenticator(parse_credentials({"JUSTICE": {"secret": JUSTICE_SECRET}}), ReplayGuard(300, clock=lambda: NOW))


def test_a_signed_request_sent_twice_is_refused_the_second_time(clocked):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY, now=NOW)
    assert clocked.authenticate(headers, BODY) == "JUSTICE"
    with pytest.raises(Unauthorized, match="already used: a replayed request"):
        clocked.authenticate(headers, BODY)


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_signed_request_outside_the_window_is_refused_saying_by_how_much(clocked, skew):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY, now=NOW + skew)
    with pytest.raises(Unauthorized, match=re.escape(f"{-skew:+d} s from the gateway's clock; allowed ±300 s")):
        clocked.authenticate(headers, BODY)


def test_a_signed_request_at_the_edge_of_the_window_is_accepted(clocked):
    assert clocked.authenticate(signature_headers("JUSTICE", JUSTICE_SECRET, BODY, now=NOW - 299), BODY) == "JUSTICE"


def test_changing_the_timestamp_or_nonce_of_a_captured_request_breaks_its_signature(clocked):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY, now=NOW - 100)
    for name, value in (("X-Lienthong-Timestamp", str(int(NOW))), ("X-Lienthong-Nonce", "f" * 32)):
        with pytest.raises(Unauthorized, match="invalid signature"):
            clocked.authenticate({**headers, name: value}, BODY)


def test_a_signed_request_without_timestamp_or_nonce_is_refused(clocked):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY, now=NOW)
    del headers["X-Lienthong-Nonce"]
    with pytest.raises(Unauthorized, match="needs X-Lienthong-Timestamp and X-Lienthong-Nonce"):
        clocked.authenticate(headers, BODY)


def test_a_bad_signature_does_not_use_up_the_nonce(clocked):
    headers = signature_headers("JUSTICE", JUSTICE_SECRET, BODY, now=NOW)
    with pytest.raises(Unauthorized, match="invalid signature"):
        clocked.authenticate({**headers, "X-Lienthong-Signature": "sha256=" + "0" * 64}, BODY)
    assert clocked.authenticate(headers, BODY) == "JUSTICE"


def test_remembered_nonces_are_forgotten_once_their_window_has_passed():
    now = [NOW]
    guard = ReplayGuard(300, clock=lambda: now[0])
    for i in range(100):
        guard.check("JUSTICE", str(int(NOW)), f"nonce-{i:012d}")
    now[0] = NOW + 301
    guard.check("JUSTICE", str(int(now[0])), "nonce-after-the-window")
    assert len(guard._seen) == 1
