"""The group intake (streams/intake.py): groups form from what is pending, and the fetch waits when it is full."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.intake import GroupIntake


def messages(n: int, size: int = 10, first: int = 0) -> list[Any]:
    return [SimpleNamespace(offset=first + i, value=b"x" * size) for i in range(n)]


def test_a_group_is_whatever_is_pending_up_to_the_group_size_in_fetch_order():
    async def scenario() -> list[list[int]]:
        intake = GroupIntake(["t"], group_messages=4)
        await intake.put(messages(3))
        await intake.put(messages(3, first=3))
        return [[m.offset for m in await intake.take()] for _ in range(2)]

    assert asyncio.run(scenario()) == [[0, 1, 2, 3], [4, 5]]


def test_one_pending_message_is_taken_at_once_without_waiting_for_a_group():
    async def scenario() -> int:
        intake = GroupIntake(["t"], group_messages=500)
        taker = asyncio.ensure_future(intake.take())
        await asyncio.sleep(0)
        await intake.put(messages(1))
        return len(await asyncio.wait_for(taker, 1))

    assert asyncio.run(scenario()) == 1


def test_the_fetch_waits_while_the_intake_holds_too_many_messages_or_bytes():
    async def scenario(size: int) -> tuple[bool, bool]:
        intake = GroupIntake(["t"], group_messages=2)  # room for 8 messages
        intake.limit_bytes = 1000
        await intake.put(messages(8 if size < 100 else 2, size=size))
        blocked = asyncio.ensure_future(intake.put(messages(1, first=100)))
        await asyncio.sleep(0.01)
        waited = not blocked.done()
        while intake.pending:
            await intake.take()
        await asyncio.wait_for(blocked, 1)
        return waited, len(intake) == 1

    assert asyncio.run(scenario(10)) == (True, True)  # by count
    assert asyncio.run(scenario(600)) == (True, True)  # by bytes


def test_a_rebalance_clears_what_is_pending():
    async def scenario() -> int:
        intake = GroupIntake(["t"], group_messages=4)
        await intake.put(messages(3))
        intake.clear()
        return len(intake) + intake.pending_bytes

    assert asyncio.run(scenario()) == 0
