"""Fault hooks for tests: break a real worker process at a chosen point.

``LIENTHONG_FAULT=<kind>@<n>`` arms one fault at the worker's ``n``-th processed
message (counted from 1 in this process). Tests use it to prove what a crash at
that very point does to a real worker on a real broker:

* ``agent_error@n`` raises inside the agent (an unhandled exception): the worker
  must exit non-zero within seconds instead of living on doing nothing.
* ``exit_after_delta@n`` ends the process (``os._exit``) right after the
  message's delta is durable in the changelog and before its alerts and dead
  letters are sent: the window in which side effects used to be lost.
* ``exit_during_checkpoint@n`` ends the process once the ``n``-th checkpoint part
  it sent is durable, before the checkpoint's marker (``streams.checkpoint``).
* ``exit_after_checkpoint@n`` ends it once the ``n``-th checkpoint's marker is
  durable, before its tombstones are sent.
* ``stall@n`` blocks the agent on message ``n`` for an hour (a stuck worker).
* ``recovery_hang@0`` never lets a table recovery finish.
* ``app_crash@0`` raises in the partitions-assigned handler, which crashes the
  Faust app itself (mode's "We experienced a crash!" path, not the agent's).

Unset (production), :func:`armed` returns ``None`` and nothing is checked per message
beyond one comparison.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Faults armed at the n-th message; ``recovery_hang`` is armed for every recovery.
PER_MESSAGE = ("agent_error", "exit_after_delta", "stall")
#: Faults armed at the n-th checkpoint part / checkpoint (streams.checkpoint).
CHECKPOINT = ("exit_during_checkpoint", "exit_after_checkpoint")
KINDS = (*PER_MESSAGE, *CHECKPOINT, "recovery_hang", "app_crash")


class InjectedFault(RuntimeError):
    """The exception ``agent_error`` raises."""


@dataclass(frozen=True)
class Fault:
    kind: str
    at_message: int


def armed(value: str | None = None) -> Fault | None:
    """The fault named by ``LIENTHONG_FAULT`` (or ``value``), or None."""
    raw = value if value is not None else os.environ.get("LIENTHONG_FAULT", "")
    if not raw:
        return None
    kind, _, at = raw.partition("@")
    if kind not in KINDS or not at.isdigit():
        raise ValueError(f"LIENTHONG_FAULT: {raw!r} is not <{'|'.join(KINDS)}>@<message number>")
    return Fault(kind, int(at))


def exit_now(fault: Fault) -> None:
    """End the process at once, as a SIGKILL would (what was flushed is all that is left)."""
    from hubbase.logs import get_logger

    get_logger(__name__).warning("fault_injected", fault=fault.kind, at=fault.at_message)
    os._exit(1)
