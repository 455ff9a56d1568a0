"""Library log records (Faust, mode, aiokafka, kafka-python, warnings) come out as our JSON lines."""

from __future__ import annotations

import io
import json
import logging
import warnings

import pytest

from hubbase import logs


@pytest.fixture
def output():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", stream=stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)
    logging.captureWarnings(False)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_mode_timer_warning_is_a_json_line(output):
    logging.getLogger("mode.timers").warning("Timer %s is overlapping (interval=%r runtime=%r)", "t", 0.5, 2.0)
    [record] = records(output)
    assert record["event"] == "Timer t is overlapping (interval=0.5 runtime=2.0)"
    assert record["level"] == "warning" and record["logger"] == "mode.timers" and record["timestamp"]


def test_kafka_pythons_event_loop_warning_is_a_json_line(output):
    logging.getLogger("kafka.net.selector").warning("blocking the event loop -- likely a tight sync loop")
    [record] = records(output)
    assert record["logger"] == "kafka.net.selector" and "blocking the event loop" in record["event"]


def test_a_library_exception_keeps_its_traceback_inside_the_json(output):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("faust.agents").exception("Agent crashed")
    [record] = records(output)
    assert record["event"] == "Agent crashed" and "ValueError: boom" in record["exception"]


def test_python_warnings_are_json_lines(output):
    with warnings.catch_warnings():  # pytest records warnings itself; route them as a worker does
        logs.configure("INFO", stream=output)
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
        logging.captureWarnings(False)
    [record] = records(output)
    assert "deprecated thing" in record["event"] and record["logger"] == "py.warnings"


def test_library_info_is_quiet_at_info(output):
    logging.getLogger("aiokafka.consumer").info("fetching")
    assert output.getvalue() == ""


def test_an_id_number_in_a_library_message_is_redacted(output):
    logging.getLogger("faust").warning("bad key %s", "079200000001")
    [record] = records(output)
    assert "079200000001" not in record["event"] and "[REDACTED-ID]" in record["event"]
