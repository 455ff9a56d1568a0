"""The py-spy summary of bench/profile_worker.py: which samples count, and where they go."""

from __future__ import annotations

from pathlib import Path

from bench.profile_worker import layer_of, read_stacks, summarise

AGENT = "Hub._build_app.<locals>.count_and_flag (streams/app.py:300)"
HANDLE = "Hub.handle_events (streams/app.py:361)"
RAW = "\n".join([
    f"run_forever (asyncio/base_events.py:600);{AGENT};{HANDLE};Processor.process_group (streams/processor.py:90) 6",
    f"run_forever (asyncio/base_events.py:600);{AGENT};GroupIntake.take (streams/intake.py:70) 2",
    "run_forever (asyncio/base_events.py:600);Sender._send_produce_req (aiokafka/producer/sender.py:300) 2",
    "run_forever (asyncio/base_events.py:600);EpollSelector.select (selectors.py:468) 30",
    "<module> (lienthong/__main__.py:3);_find_and_load (<frozen importlib._bootstrap>:1176) 50",
])


def summary_of(tmp_path: Path) -> list[str]:
    path = tmp_path / "worker.txt"
    path.write_text(RAW + "\n")
    return summarise(read_stacks(path))


def share(lines: list[str], label: str) -> str:
    """The percentage printed before ``label`` (exactly that row)."""
    (row,) = [line for line in lines if line.split("%", 1)[-1].strip() == label]
    return row.split("%", 1)[0].strip()


def test_waiting_and_start_up_samples_are_left_out_of_the_shares(tmp_path: Path) -> None:
    lines = summary_of(tmp_path)
    assert lines[0].startswith("10 samples of the busy worker")
    assert "30 waiting" in lines[0] and "50 in start-up imports" in lines[0]


def test_a_message_s_time_is_split_between_our_handler_and_taking_the_group(tmp_path: Path) -> None:
    lines = summary_of(tmp_path)
    assert share(lines, "our agent body (count_and_flag), all of it") == "80.0"
    assert share(lines, "of which taking the group and acking it (intake, acks, changelog hand-on)") == "20.0"
    assert share(lines, "Hub.handle_events (our per-group work)") == "60.0"
    assert share(lines, "aiokafka produce (accumulator, sender, protocol)") == "20.0"


def test_frames_fall_in_the_layer_of_their_package() -> None:
    assert layer_of("Store._set (faust/stores/rocksdb.py:120)").startswith("faust: tables/stores")
    assert layer_of("Stream._c_aiter (faust/streams.py:800)").startswith("faust: per-message")
    assert layer_of("SyncRollup.on_event (streams/flags/rollups.py:40)") == "ours: flag rules"
    assert layer_of("len (builtins:0)") == "other (stdlib, interpreter)"
