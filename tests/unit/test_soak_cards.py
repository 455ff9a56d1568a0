"""The soak's backlog (bench/soak.py): distinct citizens, or the same citizens again and again."""

from __future__ import annotations

from bench.soak import cards


def test_by_default_every_card_is_of_another_citizen() -> None:
    backlog = list(cards(0, 50, 50))
    assert len({card["citizen_ref"] for card in backlog}) == 50


def test_with_citizens_the_cards_go_to_them_again_and_again_each_event_its_own_id() -> None:
    backlog = list(cards(0, 50, 50, citizens=7))
    assert len({card["citizen_ref"] for card in backlog}) == 7
    assert len({card["event_id"] for card in backlog}) == 50
    assert [card["occurred_at"] for card in backlog] == sorted(card["occurred_at"] for card in backlog)
