"""The peer a Python team would pick instead: a Quix Streams application doing our core work.

Run as its own process by ``bench/peer.py`` (``python -m bench.peer_app``), so its
CPU time and memory are its own. On single JSON messages keyed by ``ward|day``
(one message per event, as our live connectors send), it does what the hub's
counting does at its core, and no more:

* **dedupe by event id** — RocksDB state (Quix's default store, with its
  changelog topic), one key per event id within the message key's state;
* **per-ward/day counting** — one counter per ``ward|day`` in the same state.

It does not decode Avro, check signatures, validate contracts, check
pseudonyms or run flag rules (our worker does all of these per event). It ends
itself once it has processed ``--expect`` messages and prints one JSON line:
its own wall-clock and CPU span from the first to the last message.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def run(bootstrap: str, topic: str, expect: int, state_dir: str, group: str) -> dict[str, Any]:
    from quixstreams import Application, State

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        use_changelog_topics=True,
    )
    source = app.topic(topic, value_deserializer="json", key_deserializer="str")
    figures: dict[str, Any] = {"messages": 0, "counted": 0, "duplicates": 0, "first_at": None, "first_cpu": None}

    def count(event: dict[str, Any], state: State) -> None:
        if figures["first_at"] is None:
            figures["first_at"], figures["first_cpu"] = time.time(), time.process_time()
        seen = "id:" + event["event_id"]
        if state.get(seen) is not None:
            figures["duplicates"] += 1
        else:
            state.set(seen, 1)
            state.set("count", (state.get("count") or 0) + 1)
            figures["counted"] += 1
        figures["messages"] += 1
        if figures["messages"] >= expect:
            figures["last_at"], figures["last_cpu"] = time.time(), time.process_time()
            app.stop()

    app.dataframe(source).update(count, stateful=True)
    app.run()
    return {
        "messages": figures["messages"],
        "counted": figures["counted"],
        "duplicates": figures["duplicates"],
        "seconds": figures.get("last_at", time.time()) - (figures["first_at"] or time.time()),
        "cpu_seconds": figures.get("last_cpu", time.process_time()) - (figures["first_cpu"] or time.process_time()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--group", default="bench-peer")
    a = parser.parse_args()
    print(json.dumps(run(a.bootstrap, a.topic, a.expect, a.state_dir, a.group)), flush=True)
