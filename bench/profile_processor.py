"""Profile the worker's per-event hot path without a broker.

Builds the benchmark workload (simulated city, pseudonymised, grouped into
``EventBatch`` messages per partition exactly as the Publisher sends them), then
runs :meth:`streams.processor.Processor.process` over every message, with every
flag rule on, and compares it with a bare decode of the same messages
(``EventCodec.decode_message``), in one run so the ratio is fair on a noisy
machine::

    python -m bench.profile_processor --events 100000 --batch-size 500 [--profile] [--repeat 3]
    python -m bench.profile_processor --events 50000 --batch-size 1 --group 60   # single-event, group commit

``--profile`` adds a cProfile of one processor pass (top functions by own time);
``--pyinstrument`` uses pyinstrument instead, when installed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.workload import Message, build_events, encode_messages
from schemas.codec import EventCodec
from streams.flags import default_rules
from streams.processor import Processor, SourceMessage
from streams.store import DiskPartitionState, PartitionDB
from streams.worker import tune_gc

NOW_MS = 1_800_000_000_000


def run_processor(messages: list[Message], codec: EventCodec | None = None, group: int = 1,
                  disk: Path | None = None) -> tuple[float, Processor]:
    """Seconds to process every message on a fresh processor (all rules on).

    ``group`` > 1: group commit as the worker does it, up to ``group`` messages of one
    topic-partition per state change (``Processor.process_group``).
    ``disk``: each partition's state in a fresh RocksDB database under it (``streams.store``).
    """
    processor = Processor(codec or EventCodec(), default_rules())
    if disk is not None:
        shutil.rmtree(disk, ignore_errors=True)
        for partition in sorted({m.partition for m in messages}):
            processor.adopt(DiskPartitionState(partition, PartitionDB(disk / f"p{partition:04d}"),
                                               stores=processor.stores))
    offsets: dict[tuple[str, int], int] = {}
    pending: dict[tuple[str, int], list[SourceMessage]] = {}
    gc.collect()
    start = time.perf_counter()
    for m in messages:
        tp = (m.topic, m.partition)
        offset = offsets.get(tp, 0)
        offsets[tp] = offset + 1
        if group <= 1:
            processor.process(m.topic, m.partition, offset, m.value, NOW_MS, NOW_MS)
            continue
        run = pending.setdefault(tp, [])
        run.append(SourceMessage(offset, m.value, NOW_MS))
        if len(run) >= group:
            processor.process_group(m.topic, m.partition, run, NOW_MS)
            pending[tp] = []
    for (topic, partition), run in pending.items():
        if run:
            processor.process_group(topic, partition, run, NOW_MS)
    return time.perf_counter() - start, processor


def run_bare_decode(messages: list[Message], codec: EventCodec | None = None) -> tuple[float, int]:
    codec = codec or EventCodec()
    gc.collect()
    start = time.perf_counter()
    n = 0
    for m in messages:
        n += len(codec.decode_message(m.value))
    return time.perf_counter() - start, n


def _close(processor: Processor) -> None:
    for state in processor.states.values():
        if isinstance(state, DiskPartitionState):
            state.db.close()


def totals(processor: Processor) -> dict[str, int]:
    out: dict[str, int] = {"events_total": 0, "events_duplicate": 0, "events_dead_lettered": 0}
    for state in processor.states.values():
        for key, value in state.counters.items():
            metric = key.split("|", 1)[0]
            if metric in out:
                out[metric] += value
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--group", type=int, default=1,
                        help="group commit: up to this many messages of a topic-partition per state change")
    parser.add_argument("--profile", action="store_true", help="cProfile one processor pass")
    parser.add_argument("--pyinstrument", action="store_true", help="pyinstrument one processor pass")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--disk", action="store_true",
                        help="partition state on disk (LIENTHONG_STATE_STORE=disk), in a temporary directory")
    args = parser.parse_args(argv)
    disk = Path(tempfile.mkdtemp(prefix="lienthong-profile-")) / "state" if args.disk else None

    t0 = time.perf_counter()
    events = build_events(args.events, args.seed)
    messages = encode_messages(events, args.batch_size, args.partitions)
    print(f"workload: {len(events)} events in {len(messages)} messages "
          f"(batch {args.batch_size}, {args.partitions} partitions), built in {time.perf_counter() - t0:.1f}s")
    n = len(events)
    del events  # the worker holds only messages and state
    tune_gc()  # the garbage collector as a worker runs it

    best_proc = best_bare = float("inf")
    result: dict[str, int] = {}
    for i in range(args.repeat):
        bare_s, decoded = run_bare_decode(messages)
        proc_s, processor = run_processor(messages, group=args.group, disk=disk)
        result = totals(processor)
        best_bare, best_proc = min(best_bare, bare_s), min(best_proc, proc_s)
        print(f"  pass {i + 1}: bare decode {decoded / bare_s:>9,.0f} ev/s   processor {n / proc_s:>9,.0f} ev/s"
              f"   ratio {bare_s / proc_s:.3f}")
        _close(processor)
        del processor
    print(f"best: bare decode {n / best_bare:,.0f} ev/s, processor {n / best_proc:,.0f} ev/s, "
          f"ratio processor/bare {best_bare / best_proc:.3f}")
    print(f"counted: {result}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_processor(messages, group=args.group, disk=disk)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler_pi = Profiler(interval=0.0005)
        profiler_pi.start()
        run_processor(messages)
        profiler_pi.stop()
        print(profiler_pi.output_text(unicode=True, color=False))
    return {"events": n, "processor_eps": n / best_proc, "bare_eps": n / best_bare, **result}


if __name__ == "__main__":
    main()
