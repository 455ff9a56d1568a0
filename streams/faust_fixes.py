"""One correction to faust-streaming that exactly-once here depends on.

Before committing source offsets Faust calls ``producer.flush()``, which first
drains its ``ProducerBuffer`` (messages queued by ``send_soon``: every table
changelog record, our alerts and dead letters) and then waits for the Kafka
client's acknowledgements. ``ProducerBuffer.flush`` gives up, however, as soon as
no message has been handed on for 0.1 s, even with messages still queued (seen
under CPU load). An offset can then be committed while the delta that records
its message is still in the buffer, and a SIGKILL at that moment loses the
message for good. ``drain`` waits until the buffer is empty.
"""

from __future__ import annotations

import asyncio

from faust.transport.producer import ProducerBuffer


async def drain(self: ProducerBuffer) -> None:
    """Flush every queued message: return only when the buffer is empty."""
    while self.size:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
        except TimeoutError:
            continue  # slow, not done: keep waiting while messages are queued


def apply() -> None:
    """Install :func:`drain` as ``ProducerBuffer.flush`` (idempotent)."""
    ProducerBuffer.flush = drain  # type: ignore[method-assign]
