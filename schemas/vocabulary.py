"""The hub's closed vocabularies, each defined once: agencies and flag statuses.

Every other module takes these names from here (flag statuses are read from the
``Flag`` schema), so a new agency or status is one edit. Flag *types* are an open
value (``Flag`` v2): the types the hub raises are those its reactions declare
(``streams.flags.FLAG_TYPES``).
The 12-digit personal ID number's shape lives in :mod:`schemas.personal_ids`; what
each event type is (topic, agency, key, counters) in :mod:`schemas.contracts`.
"""

from __future__ import annotations

import json

from schemas.registry import AVRO_DIR

#: The agencies that publish to the hub (the ``source`` of every event).
AGENCIES: tuple[str, ...] = ("POLICE", "SOCIAL_INSURANCE", "HEALTH", "JUSTICE", "PORTAL", "LABOUR")


def _flag_enum(field: str) -> tuple[str, ...]:
    """The symbols of an enum field of the latest ``Flag`` schema: the contract consumers read."""
    latest = max((AVRO_DIR / "Flag").glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    schema = json.loads(latest.read_text(encoding="utf-8"))
    (found,) = (f["type"]["symbols"] for f in schema["fields"] if f["name"] == field)
    return tuple(found)


#: A flag's lifecycle: OPEN → RESOLVED, or WITHDRAWN (see ``streams/flags/records.py``).
FLAG_STATUSES: tuple[str, ...] = _flag_enum("status")
WITHDRAWN = "WITHDRAWN"
#: The statuses a flag can be *listed* with: a withdrawn flag is deleted and announced
#: once on ``lienthong.alerts`` and the live stream, never kept, so the API never holds one.
LISTED_FLAG_STATUSES: tuple[str, ...] = tuple(s for s in FLAG_STATUSES if s != WITHDRAWN)
