"""Live listeners: one bounded queue per server-sent-events client.

The worker announces what each message changed (``notify``); a client that reads
too slowly loses announcements rather than slowing the stream processing.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Announcements a client may have waiting before new ones are dropped for it.
QUEUE_LIMIT = 1000


class Listeners:
    """The queues of the clients currently following ``/api/stream``."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[dict[str, Any]]] = []

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def notify(self, message: dict[str, Any]) -> None:
        for queue in list(self._queues):
            if queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(message)

    def __len__(self) -> int:
        return len(self._queues)
