"""JSON logs for every service, through structlog.

A processor scrubs anything shaped like a 12-digit personal ID number, so a stray
``log.info(row=...)`` can never put one in a log line: in any value, nested lists
and dicts included, and in the records of the libraries' own loggers (Faust,
aiokafka, kafka-python), which could quote a message they failed on (scrubbed when
the record is made, whatever handler later prints it).

Libraries log through the standard library (Faust and mode's timers, aiokafka,
kafka-python's "blocking the event loop"); their records are rendered by the same
processors, so every line a service writes is one JSON object.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from schemas.personal_ids import has_id, mask_text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return _scrub(bytes(value).decode("utf-8", "replace"))
    return value


def redact_id_numbers(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if not isinstance(value, (int, float, bool)) and value is not None:
            event_dict[key] = _scrub(value)
    return event_dict


def _redacting_record_factory(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Wrap the stdlib's record factory so every library log record is scrubbed, whatever its handler."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the library's problem, not ours
            return record
        if has_id(message):
            record.msg, record.args = mask_text(message), None
        return record

    make.lienthong_redacts = True  # type: ignore[attr-defined]
    return make


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
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "lienthong_redacts", False):
        logging.setLogRecordFactory(_redacting_record_factory(factory))
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
