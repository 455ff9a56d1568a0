"""The police-onboarding backlog: a month of ID cards, social insurance silent.

Issue 12's crash: 250,000 July ID cards of distinct citizens are read while
social insurance sends nothing, its feed not yet idle (so its clock stays put);
then the first August cards come, the feed is idle, its clock follows the
police's, and every July card's ``SYNC_MISSING`` deadline is due at once. One
worker built a 19 MB delta for that one message. The scenario is shared by the
processor-level test, the broker test and the soak benchmark, at any scale.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from schemas.wards import ward_codes

#: 2024-07-01T00:00:00+07:00
JULY_MS = 1_719_766_800_000
DAY_MS = 86_400_000
#: 2024-08-01T00:00:00+07:00
AUGUST_MS = JULY_MS + 31 * DAY_MS


def citizen_ref(n: int) -> str:
    """A pseudonym-shaped citizen reference (never a personal ID number)."""
    return hashlib.sha256(f"onboarding-citizen-{n}".encode()).hexdigest()


def id_card(at: int, n: int, ward: str) -> dict[str, Any]:
    return {
        "event_type": "IdCardIssued",
        "event_id": str(uuid.UUID(int=n + 1)),
        "source": "POLICE",
        "occurred_at": at,
        "ward_code": ward,
        "citizen_ref": citizen_ref(n),
        "correlation_id": None,
        "card_kind": "CCCD_CHIP",
    }


def july_cards(count: int, wards: int = 168) -> list[dict[str, Any]]:
    """``count`` cards of distinct citizens, spread evenly over July and ``wards`` wards, in time order."""
    codes = sorted(ward_codes())[:wards]
    step = (31 * DAY_MS) // max(1, count)
    return [id_card(JULY_MS + i * step, i, codes[i % len(codes)]) for i in range(count)]


def august_cards(count: int, first: int, wards: int = 168) -> list[dict[str, Any]]:
    """The first August cards (citizen numbers from ``first``), an hour apart."""
    codes = sorted(ward_codes())[:wards]
    return [id_card(AUGUST_MS + i * 3_600_000, first + i, codes[i % len(codes)]) for i in range(count)]
