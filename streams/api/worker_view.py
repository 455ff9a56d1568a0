"""What the API and the metrics may read of a running worker, and nothing they could change.

``streams.app.Hub`` satisfies it; tests satisfy it with a few plain attributes. The
API depends on this protocol rather than on the Faust shell, so the shell can import
the API (to serve it) without the API importing the shell back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from streams.api.live import Listeners
from streams.health import Problem
from streams.view import CityView


class WorkerView(Protocol):
    """A read-only view of one worker (Quix Streams shares its context the same way)."""

    @property
    def worker_name(self) -> str: ...

    @property
    def view(self) -> CityView:
        """The city's counters, flags and agencies, local partitions live and the others from snapshots."""
        ...

    @property
    def partitions_owned(self) -> Collection[int]: ...

    @property
    def verifies_signatures(self) -> bool: ...

    @property
    def silence_periods(self) -> Sequence[dict[str, Any]]:
        """AGENCY_SILENT periods kept for the scorecard (``streams.silence``)."""
        ...

    @property
    def consumer(self) -> Any:
        """The Faust consumer, for lag only: ``assignment()``, ``highwater(tp)``, committed offsets."""
        ...

    @property
    def stats(self) -> Mapping[str, Any]:
        """Messages handled and the wall-clock and CPU span of the work (``/healthz``)."""
        ...

    @property
    def listeners(self) -> Listeners: ...

    async def problems(self) -> list[Problem]:
        """Why the worker is not doing its job (empty: healthy), lag refreshed."""
        ...
