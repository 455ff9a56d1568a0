"""Dead letters without ID numbers: a refused message is cleaned before anyone can read it.

The dead-letter topic is what operators read, and a refused message is by
definition one that broke the rules, e.g. a raw 12-digit ID number where the
pseudonym belongs. So before a dead letter is written, every ID-shaped value in it
is replaced (an exact ID by its keyed pseudonym, anything else masked), in the
value and in the reason headers, and ``lienthong.redacted`` says how many were.

A decodable message is cleaned field by field and re-encoded with the schema and
framing it was written with, so it stays a well-formed message that can be
replayed (and a raw ID sent as ``citizen_ref`` becomes the pseudonym it should
have been). Bytes no schema decodes are masked in place, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.codec import EventCodec
from schemas.errors import ContractError
from schemas.personal_ids import mask_bytes, mask_text, redact_value


class DeadLetterRedactor:
    def __init__(self, codec: EventCodec, pseudonym: Callable[[str], str] | None = None) -> None:
        self.codec = codec
        #: ``Pseudonymiser.ref``: an exact ID becomes its pseudonym; without it, IDs are masked.
        self.pseudonym = pseudonym

    def value(self, data: bytes) -> tuple[bytes, int]:
        """``data`` with no ID-shaped text left, and how many were replaced."""
        try:
            sv, record = self.codec.decode_record(data)
        except ContractError:
            return mask_bytes(bytes(data))
        found = 0
        if sv.name == "EventBatch":
            items = []
            for item in record["events"]:
                clean, n = self.value(item)
                items.append(clean)
                found += n
            record["events"] = items
        else:
            record, found = redact_value(record, self.pseudonym)
        if not found:
            return data, 0
        try:
            return self.codec.rewrite(data, record), found
        except ContractError:  # a pseudonym does not fit the field: mask the bytes instead
            return mask_bytes(bytes(data))

    @staticmethod
    def error(error: ContractError) -> ContractError:
        """The reason with any quoted ID number masked."""
        field, reason = mask_text(error.field), mask_text(error.reason)
        if (field, reason) == (error.field, error.reason):
            return error
        return ContractError(field, reason, error.event_type)
