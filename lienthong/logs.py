"""JSON logs for every service, through structlog.

A processor scrubs anything shaped like a 12-digit personal ID number, so a stray
``log.info(row=...)`` can never put one in a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_ID_NUMBER = re.compile(r"(?<!\d)\d{12}(?!\d)")


def redact_id_numbers(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str) and _ID_NUMBER.search(value):
            event_dict[key] = _ID_NUMBER.sub("[REDACTED-ID]", value)
    return event_dict


def configure(level: str = "INFO", stream: Any = None) -> None:
    logging.basicConfig(
        format="%(message)s", stream=stream or sys.stderr, level=getattr(logging, level.upper())
    )
    for noisy in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level.upper())))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_id_numbers,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
