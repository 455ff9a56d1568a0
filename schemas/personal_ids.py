"""What a raw personal ID number looks like, and how to keep one out of everything the hub writes.

A Vietnamese personal ID number is 12 ASCII digits. Anything shaped like one (12
digits not part of a longer run of digits) is treated as one wherever it turns up
outside ``citizen_id``: an event holding one is refused, and a refused message is
cleaned of them before it is written to the dead-letter topic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ID_SHAPE = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
_ID_SHAPE_BYTES = re.compile(rb"(?<![0-9])[0-9]{12}(?![0-9])")
_EXACT_ID = re.compile(r"^[0-9]{12}$")
#: A UUID's last group may be 12 digits by chance (~0.4% of them): it is not an ID number.
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MASK = "[REDACTED-ID]"
#: Same length as an ID, so masking raw bytes keeps every Avro length prefix true.
BYTES_MASK = b"#" * 12


def has_id(text: str) -> bool:
    """Whether ``text`` holds something shaped like an ID number (a UUID on its own does not)."""
    return ID_SHAPE.search(text) is not None and not _UUID.match(text)


def mask_text(text: str) -> str:
    """``text`` with every ID-shaped run replaced by ``[REDACTED-ID]``."""
    return ID_SHAPE.sub(MASK, text)


def mask_bytes(data: bytes) -> tuple[bytes, int]:
    """Undecodable bytes with every ID-shaped ASCII run overwritten in place, and how many."""
    return _ID_SHAPE_BYTES.subn(BYTES_MASK, data)


def redact_value(value: Any, pseudonym: Callable[[str], str] | None) -> tuple[Any, int]:
    """A decoded record (dicts, lists, strings) with no ID-shaped text left, and how many were found.

    A string that *is* an ID number becomes its keyed pseudonym when ``pseudonym``
    is given (so a raw number sent as ``citizen_ref`` turns into the reference it
    should have been, and the record can be replayed); any other ID-shaped text is
    masked.
    """
    if isinstance(value, str):
        if not has_id(value):
            return value, 0
        if pseudonym is not None and _EXACT_ID.match(value):
            return pseudonym(value), 1
        return ID_SHAPE.subn(MASK, value)
    if isinstance(value, dict):
        total = 0
        for key in list(value):
            value[key], n = redact_value(value[key], pseudonym)
            total += n
        return value, total
    if isinstance(value, list):
        total = 0
        for index, item in enumerate(value):
            value[index], n = redact_value(item, pseudonym)
            total += n
        return value, total
    return value, 0
