"""Is this worker doing its job? What ``/healthz``, a gauge and ``lienthong status`` report.

A worker can be up, answer HTTP and still do nothing for the city: its agent
crashed, its table recovery never finished, or it owns partitions with messages
waiting and has not processed one for a long time. Each is a *problem* with a
reason an operator can read; any problem makes ``/healthz`` answer 503, so a
supervisor (compose's healthcheck) restarts the worker.

The limits are settings: ``LIENTHONG_HEALTH_STALL_S`` (no progress with lag,
default 30 s) and ``LIENTHONG_HEALTH_RECOVERY_S`` (recovery unfinished, default
120 s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

#: Problem kinds, as labels of the ``lienthong_worker_problem`` gauge.
PROBLEMS = ("agent_crashed", "recovery_unfinished", "stalled")


@dataclass(frozen=True)
class Problem:
    kind: str
    reason: str


class Health:
    """Tracks rebalances and progress; judges them against the limits when asked."""

    def __init__(self, stall_s: float, recovery_s: float, clock: Any = time.monotonic) -> None:
        self.stall_s = stall_s
        self.recovery_s = recovery_s
        self.clock = clock
        #: When the current rebalance (or the start) began; None once recovery completed.
        self.recovering_since: float | None = clock()
        #: Last time the worker moved: a message handled or a recovery completed.
        self.progress_at = clock()

    def rebalance_started(self) -> None:
        if self.recovering_since is None:
            self.recovering_since = self.clock()

    def recovered(self) -> None:
        self.recovering_since = None
        self.progress_at = self.clock()

    def progressed(self) -> None:
        self.progress_at = self.clock()

    def problems(self, lag: int, crashed: str | None = None) -> list[Problem]:
        """Every reason this worker is not doing its job now (empty: healthy)."""
        now = self.clock()
        found: list[Problem] = []
        if crashed:
            found.append(Problem("agent_crashed", f"agent crashed: {crashed}"))
        if self.recovering_since is not None and now - self.recovering_since > self.recovery_s:
            found.append(Problem("recovery_unfinished",
                                 f"recovery not finished after {now - self.recovering_since:.0f} s "
                                 f"(limit {self.recovery_s:g} s, LIENTHONG_HEALTH_RECOVERY_S)"))
        idle = now - self.progress_at
        if self.recovering_since is None and lag > 0 and idle > self.stall_s:
            found.append(Problem("stalled", f"{lag} messages waiting in owned partitions and no progress for "
                                            f"{idle:.0f} s (limit {self.stall_s:g} s, LIENTHONG_HEALTH_STALL_S)"))
        return found


def crash_of(app: Any) -> str | None:
    """Why the Faust app or one of its agents crashed, if it did (mode services' crash flags)."""
    if app.crashed:
        return repr(app.crash_reason)
    for agent in app.agents.values():
        for actor in getattr(agent, "_actors", ()):
            if getattr(actor, "crashed", False):
                return f"{agent.name}: {actor.crash_reason!r}"
    return None
