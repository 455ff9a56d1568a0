"""Agency liveness: when each agency was last heard from, and how many events it sent.

A reaction like the flag rules: every first-seen event (heartbeats included) marks
its agency live at the wall clock (``change.now_ms``; the message's Kafka time when
there is none, as in a replay). ``AGENCY_SILENT`` (``streams.silence``) and the
dashboard read these records; they are fenced and replayed with the rest of the
partition's state.
"""

from __future__ import annotations

from typing import Any

from streams.reaction import BaseReaction, Event
from streams.state import Change, PartitionState
from streams.stores import LIVENESS


class AgencyLiveness(BaseReaction):
    """Keeps ``{last_seen_ms, events}`` per agency in the ``liveness`` store."""

    stores = (LIVENESS,)

    def on_event(self, event: Event, change: Change) -> None:
        source = event["source"]
        seen = change.get(LIVENESS, source)
        if change.now_ms is not None:
            now = change.now_ms
        else:
            assert change.source is not None
            now = change.source.timestamp
        # wall clock, on purpose: AGENCY_SILENT is about the agency being live now
        change.set(LIVENESS, source, {"last_seen_ms": now, "events": (seen["events"] if seen else 0) + 1})


def agency_liveness(state: PartitionState) -> dict[str, dict[str, Any]]:
    """Each agency's liveness record in a partition, by agency."""
    return dict(state.stores.get(LIVENESS, {}).items())
