"""Store names of partition state, typed so a reaction names a store it declared, not a string.

Each partition's state is a few key → JSON-able value stores (``streams.state``),
fenced, replayed and restored together. A store is owned by the reaction that
declares it in its ``stores`` (``streams.reaction.Reaction``), and is defined in
that reaction's module, so following a store's name leads to the code that keeps
it; the processor makes the union of its reactions' stores (``Processor.stores``)
and the disk state opens exactly those. The two below belong to the core:

* :data:`META`: small per-partition records, read on every message and kept in
  memory even on disk: the watermark, each feed's clock (``streams.clocks``) and
  dedupe clock, the audit chain's head;
* :data:`PENDING`: event-time timers of every reaction (``streams.timers``).

:data:`LIVENESS` (each agency's liveness, kept by ``streams.liveness``) is declared
here too, because a delta written before it had a store of its own kept liveness
in ``meta`` under :data:`LEGACY_AGENCY_PREFIX`, and reading such a delta (or an
older disk store) moves it here (``streams.state.Delta.from_json``).

``StoreName`` is a ``NewType``: mypy refuses a bare string where a store is
expected, so a misspelt store is a type error instead of an empty read.
"""

from __future__ import annotations

from typing import NewType

StoreName = NewType("StoreName", str)

META = StoreName("meta")
PENDING = StoreName("pending")
LIVENESS = StoreName("liveness")

#: ``meta`` key prefix of an agency's liveness record in deltas written before :data:`LIVENESS`.
LEGACY_AGENCY_PREFIX = "agency:"


def move_legacy_liveness(put: dict[str, dict[str, object]]) -> None:
    """Move liveness records a delta kept in ``meta`` (before :data:`LIVENESS`) to their store."""
    meta = put.get(META)
    if not meta:
        return
    legacy = [key for key in meta if key.startswith(LEGACY_AGENCY_PREFIX)]
    if legacy:
        agencies = put.setdefault(LIVENESS, {})
        for key in legacy:
            agencies[key[len(LEGACY_AGENCY_PREFIX):]] = meta.pop(key)

#: Stores the processor itself uses, whatever its reactions.
CORE_STORES: tuple[StoreName, ...] = (META, PENDING)
