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
#: Digests and pseudonyms (32+ hex characters) and UUIDs often hold 12 digits in a row
#: by chance (a 64-hex pseudonym about one time in seven); they are not ID numbers.
_NOT_AN_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32,}"
_SCAN = re.compile(rf"(?P<keep>{_NOT_AN_ID})|{ID_SHAPE.pattern}")
_SCAN_BYTES = re.compile(_SCAN.pattern.encode())
#: A whole value that is a personal ID number: 12 ASCII digits (``\d`` would accept other scripts' digits).
ID_NUMBER = re.compile(r"^[0-9]{12}$")
MASK = "[REDACTED-ID]"
#: Same length as an ID, so masking raw bytes keeps every Avro length prefix true.
BYTES_MASK = b"#" * 12


def has_id(text: str) -> bool:
    """Whether ``text`` holds something shaped like an ID number (digests and UUIDs do not)."""
    return any(m.group("keep") is None for m in _SCAN.finditer(text)) if ID_SHAPE.search(text) else False


def _mask(match: re.Match[str]) -> str:
    return match.group("keep") or MASK


def _mask_bytes(match: re.Match[bytes]) -> bytes:
    return match.group("keep") or BYTES_MASK


def mask_text(text: str) -> str:
    """``text`` with every ID-shaped run replaced by ``[REDACTED-ID]``."""
    return _SCAN.sub(_mask, text) if ID_SHAPE.search(text) else text


def mask_text_counted(text: str) -> tuple[str, int]:
    found = sum(1 for m in _SCAN.finditer(text) if m.group("keep") is None)
    return (_SCAN.sub(_mask, text), found) if found else (text, 0)


def ids_in_bytes(data: bytes) -> list[bytes]:
    """The ID-shaped runs in raw bytes (a log file, a message value), digests and UUIDs left out."""
    return [m.group(0) for m in _SCAN_BYTES.finditer(data) if m.group("keep") is None]


def mask_bytes(data: bytes) -> tuple[bytes, int]:
    """Undecodable bytes with every ID-shaped ASCII run overwritten in place, and how many."""
    found = sum(1 for m in _SCAN_BYTES.finditer(data) if m.group("keep") is None)
    return (_SCAN_BYTES.sub(_mask_bytes, data), found) if found else (data, 0)


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
        if pseudonym is not None and ID_NUMBER.match(value):
            return pseudonym(value), 1
        return mask_text_counted(value)
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
