"""Bounded work per message: a watermark jump over a backlog of deadlines, at scale, no broker.

The police-onboarding backlog (bench/onboarding.py): July ID cards read while
social insurance's feed is not idle, then August cards with every feed idle,
which makes every July ``SYNC_MISSING`` deadline due at once.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from bench.onboarding import august_cards, july_cards
from schemas.codec import EventCodec
from schemas.topics import IDENTITY
from streams.flags import default_rules
from streams.processor import Processor
from streams.state import Delta, PartitionState

CODEC = EventCodec()
MiB = 1024 * 1024
JULY = 30_000


def onboard(step: int, july: int = JULY, august: int = 80) -> tuple[Processor, list[Delta]]:
    """Every card through one partition in batches of 500, August one card per message."""
    processor = Processor(CODEC, default_rules(), deadline_step=step)
    deltas: list[Delta] = []
    cards = july_cards(july)
    offset = 0
    for start in range(0, len(cards), 500):
        value = CODEC.encode_batch([CODEC.encode(e) for e in cards[start:start + 500]])
        outcome = processor.process(IDENTITY, 0, offset, value, cards[start]["occurred_at"], idle=frozenset())
        assert outcome.delta is not None
        deltas.append(outcome.delta)
        offset += 1
    for card in august_cards(august, first=july):
        outcome = processor.process(IDENTITY, 0, offset, CODEC.encode(card), card["occurred_at"], idle=None)
        assert outcome.delta is not None
        deltas.append(outcome.delta)
        offset += 1
    return processor, deltas


@cache
def at_once() -> tuple[Processor, list[Delta]]:
    """The reference: the same backlog with no bound (one message reconciles everything due)."""
    return onboard(step=10**9)


def state_of(processor: Processor) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    state = processor.state(0)
    return dict(state.stores["flags"]), dict(state.stores["rolled"]), dict(state.counters)


def reconciled(delta: Delta) -> int:
    """Citizen SYNC_MISSING flags a delta placed (as a flag or behind a roll-up)."""
    placed = [k for k in delta.put.get("flags", {}) if k.startswith("SYNC_MISSING:") and "/" not in k]
    return len(placed) + len(delta.put.get("rolled", {}))


def test_a_watermark_jump_over_a_month_of_cards_is_worked_off_in_bounded_steps():
    _, deltas = onboard(step=500)
    _, reference = at_once()
    due = sum(reconciled(d) for d in reference[-80:])
    assert due > JULY * 0.9  # all but the cards of the last three days of July (72 h SLA)
    assert max(reconciled(d) for d in reference[-80:]) > JULY * 0.8  # the first August card did most
    assert max(reconciled(d) for d in deltas[-80:]) <= 500
    assert sum(reconciled(d) for d in deltas[-80:]) == due  # each once, none lost
    assert max(len(d.encode()) for d in deltas) < MiB


def test_bounded_steps_end_with_the_same_flags_and_counts_as_one_big_step():
    bounded, _ = onboard(step=500)
    unbounded, deltas = at_once()
    assert max(len(d.encode()) for d in deltas) > MiB  # the hazard is real at this scale
    assert state_of(bounded) == state_of(unbounded)


def test_a_restore_in_the_middle_of_the_work_goes_on_where_it_stopped():
    processor, deltas = onboard(step=500, august=10)
    restored = Processor(CODEC, default_rules(), deadline_step=500)
    restored.adopt(PartitionState.fold(0, deltas))
    offset = max(d.offset for d in deltas) + 1
    for card in august_cards(80, first=JULY)[10:]:
        restored.process(IDENTITY, 0, offset, CODEC.encode(card), card["occurred_at"], idle=None)
        offset += 1
    reference, _ = at_once()
    assert state_of(restored)[:2] == state_of(reference)[:2]
