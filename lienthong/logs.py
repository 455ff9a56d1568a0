"""JSON logs for every service, through structlog.

A processor scrubs anything shaped like a 12-digit personal ID number, so a stray
``log.info(row=...)`` can never put one in a log line.

Libraries log through the standard library (Faust and mode's timers, aiokafka,
kafka-python's "blocking the event loop"); their records are rendered by the same
processors, so every line a service writes is one JSON object.
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


def stdlib_json_handler(stream: Any) -> logging.Handler:
    """A logging handler that renders library records as our JSON lines (logger name included)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_id_numbers,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    return handler


def configure(level: str = "INFO", stream: Any = None) -> None:
    out = stream or sys.stderr
    root = logging.getLogger()
    # replace, not add: a library's own handler (mode's "[WARNING] ..." format) must not print
    root.handlers[:] = [stdlib_json_handler(out)]
    root.setLevel(getattr(logging, level.upper()))
    logging.captureWarnings(True)  # warnings.warn(...) becomes a JSON line too
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
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
