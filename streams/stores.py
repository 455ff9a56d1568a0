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

from collections.abc import Mapping
from typing import NewType

StoreName = NewType("StoreName", str)

META = StoreName("meta")
PENDING = StoreName("pending")
LIVENESS = StoreName("liveness")

#: ``meta`` key prefix of an agency's liveness record in deltas written before :data:`LIVENESS`.
LEGACY_AGENCY_PREFIX = "agency:"


#: Stores the processor itself uses, whatever its reactions.
CORE_STORES: tuple[StoreName, ...] = (META, PENDING)


def legacy_liveness(meta: Mapping[str, object]) -> dict[str, str]:
    """Agency → its ``meta`` key, for liveness records kept in ``meta`` before :data:`LIVENESS`."""
    return {key[len(LEGACY_AGENCY_PREFIX):]: key for key in meta if key.startswith(LEGACY_AGENCY_PREFIX)}


def move_legacy_liveness(put: dict[str, dict[str, object]]) -> None:
    """Move liveness records a delta kept in ``meta`` (before :data:`LIVENESS`) to their store."""
    meta = put.get(META)
    if not meta:
        return
    legacy = legacy_liveness(meta)
    if legacy:
        agencies = put.setdefault(LIVENESS, {})
        for agency, key in legacy.items():
            agencies[agency] = meta.pop(key)
