"""The one protocol for everything that reacts to an event: counting, agency liveness, flag rules.

The processor (``streams.processor``) does only what no reaction can: verify,
decode and deduplicate each message, move the partition's clocks, and keep the
change atomic and fenced. Everything an event *means* is a :class:`Reaction`,
called in registration order on the same per-message :class:`~streams.state.Change`
(read-your-writes, as in Quix Streams' state transactions):

* ``event_types``: the event types ``on_event`` is called for (``None``: all);
* ``stores``: the partition stores it uses, typed (:class:`streams.stores.StoreName`,
  defined in the reaction's module); the processor opens their union;
* ``flag_types``: the flag types it raises (``Flag.type`` is an open value, so a
  new flag rule is one module plus one line in ``streams.flags.default_rules``;
  its SLA, if it is a new one, one line in ``streams.sla``);
* timers: a reaction asks to be called back at an event time with
  :meth:`streams.timers.Timers.notify_at` and takes what is due when its clock
  moves (``on_watermark``, ``on_clock``), as Bytewax's ``StatefulLogic.notify_at``.

The hooks: ``on_event`` (a first-seen, valid event), ``on_duplicate`` (an event id
seen before), ``on_dead_letter`` (a refused message or item), ``on_beyond_horizon``
(an event older than the dedupe horizon: not counted), ``on_watermark`` (the
partition's event time moved) and ``on_clock`` (one feed's clock moved). The
message being processed is ``change.source``; the wall clock, for liveness only,
``change.now_ms``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from schemas.errors import ContractError
from streams.state import Change, SourcePosition
from streams.stores import StoreName

Event = dict[str, Any]


class Reaction(Protocol):
    """What the processor calls for each message; see the module docstring."""

    @property
    def event_types(self) -> frozenset[str] | None: ...

    @property
    def stores(self) -> tuple[StoreName, ...]: ...

    @property
    def flag_types(self) -> tuple[str, ...]: ...

    def on_event(self, event: Event, change: Change) -> None: ...

    def on_duplicate(self, event: Event, change: Change) -> None: ...

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None: ...

    def on_watermark(self, watermark: int, change: Change) -> None: ...

    def on_beyond_horizon(self, event: Event, change: Change) -> None: ...

    def on_clock(self, topic: str, clock: int, change: Change) -> None: ...


class BaseReaction:
    """No-op hooks and empty declarations, so a reaction writes only what it reacts to.

    The processor skips a hook left as this class's no-op, so declaring nothing
    costs nothing per event.
    """

    #: Event types ``on_event`` reacts to (``None``: every type). Most reactions care
    #: about two or three of the fourteen types, and the hook runs for every event.
    event_types: ClassVar[frozenset[str] | None] = None
    #: The partition stores this reaction reads and writes.
    stores: ClassVar[tuple[StoreName, ...]] = ()
    #: The flag types it raises (``Flag.type`` is an open value: docs/contracts.md).
    flag_types: ClassVar[tuple[str, ...]] = ()

    def on_event(self, event: Event, change: Change) -> None:
        return None

    def on_duplicate(self, event: Event, change: Change) -> None:
        return None

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        return None

    def on_watermark(self, watermark: int, change: Change) -> None:
        return None

    def on_beyond_horizon(self, event: Event, change: Change) -> None:
        """An event older than the dedupe horizon: not counted, dead-lettered (docs/exactly-once.md §3a)."""
        return None

    def on_clock(self, topic: str, clock: int, change: Change) -> None:
        """The event-time clock of one feed (``topic``) moved (see ``streams.clocks``)."""
        return None


def hooks_of(reactions: list[Reaction], hook: str, event_type: str | None = None) -> list[Any]:
    """The bound ``hook`` of each reaction that implements it (not BaseReaction's no-op).

    With ``event_type``, only reactions whose ``event_types`` include it (or are None).
    """
    found = []
    for reaction in reactions:
        if getattr(type(reaction), hook, None) is getattr(BaseReaction, hook):
            continue
        types = getattr(reaction, "event_types", None)
        if event_type is not None and types is not None and event_type not in types:
            continue
        found.append(getattr(reaction, hook))
    return found


def watermark_of(change: Change) -> int:
    """The partition's event-time watermark as of this change (before its own events)."""
    return change.watermark
