"""The contract between the processor and a flag rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from schemas.errors import ContractError
from streams.state import Change

Event = dict[str, Any]


@dataclass(frozen=True)
class SourcePosition:
    """Where a Kafka message came from; ``timestamp`` is the Kafka message time (ms)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class FlagRule(Protocol):
    """One kind of failure detection, called by the processor for each message."""

    def on_event(self, event: Event, change: Change) -> None: ...

    def on_duplicate(self, event: Event, change: Change) -> None: ...

    def on_dead_letter(
        self, error: ContractError, where: SourcePosition, change: Change
    ) -> None: ...

    def on_watermark(self, watermark: int, change: Change) -> None: ...

    def on_clock(self, topic: str, clock: int, change: Change) -> None: ...


class BaseRule:
    """No-op hooks, so a rule implements only what it reacts to."""

    #: Event types ``on_event`` reacts to (``None``: every type). The processor
    #: calls the hook for these only: it runs for every event, and most rules care
    #: about two or three of the fourteen types.
    event_types: frozenset[str] | None = None

    def on_event(self, event: Event, change: Change) -> None:
        return None

    def on_duplicate(self, event: Event, change: Change) -> None:
        return None

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        return None

    def on_watermark(self, watermark: int, change: Change) -> None:
        return None

    def on_clock(self, topic: str, clock: int, change: Change) -> None:
        """The event-time clock of one feed (``topic``) moved (see ``streams.clocks``)."""
        return None


def watermark_of(change: Change) -> int:
    """The partition's event-time watermark as of this change (before its own events)."""
    return int(change.get("meta", "watermark", 0) or 0)
