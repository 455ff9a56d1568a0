"""The corrections to Faust that exactness depends on, each specified on its own."""

from __future__ import annotations

import asyncio

from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams import faust_fixes


def queue_with(flow: FlowControlEvent, *items: int) -> FlowControlQueue:
    queue: FlowControlQueue = FlowControlQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    for item in items:
        queue.put_nowait(item)
    return queue


def test_resuming_flow_that_is_running_keeps_the_queued_messages():
    faust_fixes.apply()

    async def run() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        queue = queue_with(flow, 8, 9, 10)  # fetched after the seek, waiting for the agent
        flow.resume()  # Faust's recovery calls this once more at its end
        return queue.qsize()

    assert asyncio.run(run()) == 3


def test_resuming_after_a_suspension_still_drops_what_was_queued_before_it():
    faust_fixes.apply()

    async def run() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        queue = queue_with(flow, 1, 2)
        flow.suspend()  # a rebalance: these messages may belong to revoked partitions
        flow.resume()
        return queue.qsize()

    assert asyncio.run(run()) == 0
