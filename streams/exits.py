"""How a worker ends when it cannot do its job: one log line, a non-zero code, at once.

A supervisor (compose, systemd) restarts a worker that exits; one that lives on
doing nothing freezes the city's numbers unnoticed. Exactness never depends on a
clean shutdown (a SIGKILL at any moment is safe, ``docs/exactly-once.md``), so
ending abruptly loses nothing.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

from hubbase.logs import get_logger

log = get_logger(__name__)

#: Topics whose partition count does not fit the configuration (sysexits EX_CONFIG).
EXIT_TOPICS = 78
#: The Faust app or the agent crashed (sysexits EX_SOFTWARE).
EXIT_CRASHED = 70


def exit_now(code: int, event: str, **fields: Any) -> NoReturn:
    """Log one line and end the process now, whatever threads are still running."""
    log.critical(event, exit_code=code, **fields)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
