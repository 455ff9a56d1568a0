"""Proof of sender for every Kafka message: per-agency HMAC-SHA256 keys, with key ids.

A connector signs the exact value bytes of each message it produces (one event or
an ``EventBatch``) with its agency's current key and puts three headers beside
the value: ``lienthong.agency``, ``lienthong.key_id`` and ``lienthong.signature``
(hex HMAC-SHA256). The worker looks the key id up in the hub's keyring, checks the
key belongs to the named agency and recomputes the HMAC before it counts anything.

Why HMAC and not Ed25519: the hub already holds every agency's secret (it issues
them, as it issues gateway tokens), and verifying an HMAC over a message costs
about a microsecond against ~50 µs for an Ed25519 signature (``bench/signing.py``),
which matters for single-event messages at tens of thousands a second.

Keys rotate without downtime because the keyring holds any number of key ids per
agency: all of them verify, and an agency signs with the *last* one listed for it.
To rotate: append the new key everywhere (workers first), restart the agency's
connectors (they now sign with it), and remove the old key once nothing signed with
it is left unprocessed.

Keyring format (``LIENTHONG_SIGNING_KEYS``: inline JSON or a file path)::

    {"police-2026-01": {"agency": "POLICE", "secret": "<at least 32 characters>"}, ...}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ContractError
from schemas.json_source import read_json_source
from schemas.vocabulary import AGENCIES

AGENCY_HEADER = "lienthong.agency"
KEY_ID_HEADER = "lienthong.key_id"
SIGNATURE_HEADER = "lienthong.signature"
SIGNING_HEADERS = (AGENCY_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER)
#: Shortest secret accepted: an HMAC key should carry at least 128 bits.
MIN_SECRET_LEN = 32

#: Kafka headers as clients give them: a sequence of pairs (aiokafka, kafka-python) or a mapping (Faust).
Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes]


class KeyringError(ValueError):
    """The keyring configuration is unusable (the message never quotes a secret)."""


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    agency: str
    secret: bytes

    def __repr__(self) -> str:  # never show the secret
        return f"SigningKey({self.key_id}, {self.agency}, secret=***)"

    def signature(self, value: bytes) -> bytes:
        return hmac.new(self.secret, value, hashlib.sha256).hexdigest().encode()

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        """The three headers that prove ``value`` came from this key's agency."""
        return [
            (AGENCY_HEADER, self.agency.encode()),
            (KEY_ID_HEADER, self.key_id.encode()),
            (SIGNATURE_HEADER, self.signature(value)),
        ]


@dataclass(frozen=True)
class Proof:
    """Who signed a message: what the audit record and the source check use."""

    agency: str
    key_id: str


class Keyring:
    """Every key the hub knows, by id; the last key listed for an agency signs."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self.keys: dict[str, SigningKey] = {}
        self._signing: dict[str, SigningKey] = {}
        for key in keys:
            if key.key_id in self.keys:
                raise KeyringError(f"key id {key.key_id!r} is listed twice")
            self.keys[key.key_id] = key
            self._signing[key.agency] = key

    def __repr__(self) -> str:
        return f"Keyring({', '.join(self.keys)})"

    def __bool__(self) -> bool:
        return bool(self.keys)

    def signing_key(self, agency: str) -> SigningKey:
        key = self._signing.get(agency)
        if key is None:
            raise KeyringError(f"no signing key for {agency}: add one to LIENTHONG_SIGNING_KEYS")
        return key

    def key_ids_of(self, agency: str) -> list[str]:
        return [k.key_id for k in self.keys.values() if k.agency == agency]

    def verify(self, value: bytes, headers: Headers | None) -> Proof:
        """The agency that signed ``value``, or ``ContractError`` saying what is wrong.

        The field of the error names the header at fault, so a dead letter says
        whether the signature was missing, made with an unknown key, or wrong.
        """
        agency = key_id = signature = None
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        for name, raw in pairs:
            if name == AGENCY_HEADER:
                agency = raw
            elif name == KEY_ID_HEADER:
                key_id = raw
            elif name == SIGNATURE_HEADER:
                signature = raw
        if signature is None or key_id is None or agency is None:
            missing = [n for n, v in zip(SIGNING_HEADERS, (agency, key_id, signature), strict=True) if v is None]
            raise ContractError("signature", f"unsigned message: missing header(s) {', '.join(missing)}")
        key = self.keys.get(key_id.decode("utf-8", "replace"))
        if key is None:
            raise ContractError("signature", f"unknown key id {key_id.decode('utf-8', 'replace')[:64]!r}")
        if agency.decode("utf-8", "replace") != key.agency:
            raise ContractError("signature", f"key {key.key_id} belongs to {key.agency}, not to the agency named")
        if not hmac.compare_digest(key.signature(value), bytes(signature)):
            raise ContractError("signature", f"wrong signature for key {key.key_id}")
        return Proof(key.agency, key.key_id)


def parse_keyring(config: object) -> Keyring:
    """``{"key-id": {"agency": "POLICE", "secret": "..."}, ...}`` as a checked keyring."""
    if not isinstance(config, dict) or not config:
        raise KeyringError('signing keys must be a JSON object like {"police-1": {"agency": "POLICE", "secret": "..."}}')
    keys = []
    for key_id, entry in config.items():
        if not isinstance(entry, dict) or set(entry) != {"agency", "secret"}:
            raise KeyringError(f"{key_id}: must be an object with exactly agency and secret")
        if entry["agency"] not in AGENCIES:
            raise KeyringError(f"{key_id}: {entry['agency']!r} is not an agency (one of {', '.join(AGENCIES)})")
        secret = entry["secret"]
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LEN:
            raise KeyringError(f"{key_id}.secret: must be a string of at least {MIN_SECRET_LEN} characters")
        keys.append(SigningKey(str(key_id), entry["agency"], secret.encode()))
    return Keyring(keys)


def load_keyring(source: str | Path) -> Keyring:
    """A keyring from inline JSON or from a JSON file."""
    return parse_keyring(read_json_source(source, "signing keys", KeyringError))


def generate_keyring_file(path: Path, agencies: Iterable[str] = AGENCIES) -> Path:
    """A fresh key per agency in ``path`` (mode 0600), for the demo and tests; kept if it exists."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {f"{a.lower()}-1": {"agency": a, "secret": secrets.token_hex(32)} for a in agencies}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh, indent=2)
    return path

