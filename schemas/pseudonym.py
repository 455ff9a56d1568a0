"""Keyed pseudonyms for personal ID numbers.

HMAC-SHA256 with a secret key, not a plain hash: the 12-digit ID space is small
enough (10^12) to brute-force an unkeyed hash, so only holders of the key can
link a pseudonym back to a number.
"""

from __future__ import annotations

import hashlib
import hmac

from schemas.errors import ContractError
from schemas.personal_ids import ID_NUMBER


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def ref(self, citizen_id: str) -> str:
        """``citizen_ref`` for a raw 12-digit personal ID number."""
        citizen_id = str(citizen_id).strip()
        if not ID_NUMBER.match(citizen_id):
            raise ContractError("citizen_id", "must be exactly 12 digits")
        return hmac.new(self._key, citizen_id.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=***)"
