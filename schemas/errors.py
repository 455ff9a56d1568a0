"""The one error type for bad input, so callers can dead-letter it and go on."""

from __future__ import annotations


class ContractError(ValueError):
    """An event breaks its contract: ``field`` is at fault for ``reason``."""

    def __init__(self, field: str, reason: str, event_type: str | None = None) -> None:
        self.field = field
        self.reason = reason
        self.event_type = event_type
        where = f"{event_type}.{field}" if event_type else field
        super().__init__(f"{where}: {reason}")

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "event_type": self.event_type or ""}
