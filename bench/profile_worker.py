"""Where a real worker's time goes: py-spy on one worker, single-event or batched messages.

The bench's worker run (:func:`bench.throughput.run_workers`) with py-spy attached,
on the embedded broker, without the bench's other rows (signing, peer), then a
summary of the collapsed stacks: the top frames by own time and by cumulative
time, and the share of each layer (Faust's per-message machinery, aiokafka,
our decode/validate/state/changelog...)::

    python -m bench.profile_worker --events 20000 --batch-size 1 --out /tmp/prof-single
    python -m bench.profile_worker --events 200000 --batch-size 500 --out /tmp/prof-batched
    python -m bench.profile_worker --summarise /tmp/prof-single/worker.txt   # an existing profile

``--out DIR`` keeps ``worker.txt`` (py-spy's raw collapsed stacks, one line per
distinct stack with its sample count); the summary is printed. Idle frames
(the event loop waiting in ``select``) are not sampled, so shares are of the
worker's busy time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

#: layer of a frame, by the file it runs in (first match wins; order matters)
LAYERS: list[tuple[str, re.Pattern[str]]] = [
    ("aiokafka/kafka-python (fetch, produce, protocol)", re.compile(r"^(aiokafka|kafka)/")),
    ("faust: tables/stores (RocksDB, changelog)", re.compile(r"^faust/(tables|stores)/")),
    ("faust: per-message machinery (conductor, stream, agent, serializers, sensors)", re.compile(r"^faust/")),
    ("mode (faust's service runtime)", re.compile(r"^mode/")),
    ("asyncio", re.compile(r"^asyncio/")),
    ("fastavro", re.compile(r"^fastavro/")),
    ("ours: schemas (decode, validate, signatures)", re.compile(r"^schemas/")),
    ("ours: flag rules", re.compile(r"^streams/flags/")),
    ("ours: processor/state (dedupe, counters, delta)", re.compile(r"^streams/(processor|state|counting|clock|clocks|parts)\.py")),
    ("ours: changelog/store/snapshots", re.compile(r"^streams/(changelog|store|restore|snapshots|rollup_merge)\.py")),
    ("ours: output (alerts, dead letters)", re.compile(r"^streams/output\.py")),
    ("ours: Hub.handle_events, worker glue, API", re.compile(r"^streams/")),
    ("ours: other", re.compile(r"^(hubbase|lienthong|connectors)/")),
    ("crypto", re.compile(r"^(cryptography|nacl)/|^hmac\.py|^hashlib")),
]
#: stacks of the worker's start (imports), left out of the shares
STARTUP = re.compile(r"<frozen importlib")
#: leaf frames that are waiting, not working (py-spy's idle detection misses them)
WAITING = re.compile(r"^EpollSelector\.select |^watch_for_crash\.")
#: frames on (nearly) every stack: left out of the cumulative list
ROOTS = re.compile(r"\((<frozen |click/|asyncio/|threading\.py|mode/|lienthong/(cli|__main__)\.py|streams/worker\.py)")
#: what a message costs, by where it is spent: (label, a frame on the stack, unless a frame on it)
FOCUS: list[tuple[str, str, str | None]] = [
    ("our agent body (count_and_flag), all of it", r"count_and_flag", None),
    ("  of which taking the group and acking it (intake, acks, changelog hand-on)", r"count_and_flag",
     r"^Hub\.handle_events "),
    ("  Hub.handle_events (our per-group work)", r"^Hub\.handle_events ", None),
    ("    Processor.process_group (verify, decode, validate, dedupe, counters, flags)", r"^Processor\.process_group ",
     None),
    ("      signature check + Avro decode", r"^Processor\.verified_decode_indexed ", None),
    ("      flag rules", r"\(streams/flags/", None),
    ("    Hub.write_delta (delta into the table: RocksDB + changelog send)", r"^Hub\.write_delta ", None),
    ("    Output (audit, partials, alerts, dead letters)", r"^Output\.", None),
    ("    metrics, health, notify", r"^(HubMetrics\.record|Health\.progressed|Hub\.notify) ", None),
    ("Faust sensors (Monitor, per message and per send)", r"\(faust/sensors/", None),
    ("Faust table store (RocksDB set, persisted offset)", r"\(faust/stores/", None),
    ("Faust producer buffer", r"\(faust/transport/producer", None),
    ("aiokafka produce (accumulator, sender, protocol)", r"\(aiokafka/producer/", None),
    ("fetch: Faust fetcher + aiokafka fetcher", r"^(Fetcher|App)\._fetcher |\(aiokafka/consumer/fetcher", None),
    ("offset commit", r"^(Consumer\.(commit|_commit\w*|force_commit)|GroupCoordinator\._do_commit_offsets) ", None),
]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def layer_of(frame: str) -> str:
    m = FRAME.match(frame)
    path = m.group("file") if m else frame
    for name, pattern in LAYERS:
        if pattern.search(path):
            return name
    return "other (stdlib, interpreter)"


def short(frame: str) -> str:
    """``func (pkg/module.py)``: the function and the last two path parts, no line."""
    m = FRAME.match(frame)
    if not m:
        return frame
    parts = m.group("file").split("/")
    return f"{m.group('func')} ({'/'.join(parts[-2:])})"


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """py-spy's raw format: ``frame;frame;...;leaf count`` (root first)."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def summarise(stacks: Counter[tuple[str, ...]], top: int = 20) -> list[str]:
    total = sum(stacks.values())
    if not total:
        return ["no samples"]
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    layer_own: Counter[str] = Counter()
    layer_cum: Counter[str] = Counter()
    startup = sum(n for stack, n in stacks.items() if any(STARTUP.search(f) for f in stack))
    stacks = Counter({s: n for s, n in stacks.items() if not any(STARTUP.search(f) for f in s)})
    waiting = sum(n for s, n in stacks.items() if WAITING.search(s[-1]))
    stacks = Counter({s: n for s, n in stacks.items() if not WAITING.search(s[-1])})
    total = sum(stacks.values())
    for stack, n in stacks.items():
        frames = [f for f in stack if FRAME.match(f)] or list(stack)
        own[short(frames[-1])] += n
        layer_own[layer_of(frames[-1])] += n
        for name in {short(f) for f in frames if not ROOTS.search(f)}:
            cumulative[name] += n
        for name in {layer_of(f) for f in frames}:
            layer_cum[name] += n

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    out = [f"{total:,} samples of the busy worker (all threads); left out: {waiting:,} waiting "
           f"(select, the crash watch's sleep), {startup:,} in start-up imports",
           "", "layer: own / cumulative"]
    for name, n in layer_own.most_common():
        out.append(f"  {pct(n)} {pct(layer_cum[name])}  {name}")
    for name, n in layer_cum.most_common():
        if name not in layer_own:
            out.append(f"  {pct(0)} {pct(n)}  {name}")
    out += ["", "where a message's time goes (cumulative):"]
    for label, include, exclude in FOCUS:
        inc, exc = re.compile(include), re.compile(exclude) if exclude else None
        n = sum(c for stack, c in stacks.items()
                if any(inc.search(f) for f in stack) and not (exc and any(exc.search(f) for f in stack)))
        out.append(f"  {pct(n)}  {label}")
    out += ["", f"top {top} frames by own time:"]
    out += [f"  {pct(n)}  {name}" for name, n in own.most_common(top)]
    out += ["", f"top {top} frames by cumulative time:"]
    out += [f"  {pct(n)}  {name}" for name, n in cumulative.most_common(top)]
    return out


def record(events: int, batch_size: int, out_dir: Path, seed: int = 6) -> Path:
    """Publish ``events`` in messages of ``batch_size``, run one worker under py-spy; the profile's path."""
    from bench.throughput import PARTITIONS, bare_consume, publish_backlog, run_workers
    from bench.workload import BENCH_KEY, build_events
    from hubbase.broker import EmbeddedBroker
    from hubbase.topic_admin import ensure_topics
    from schemas.signing import generate_keyring_file

    print(f"building {events:,} events...", flush=True)
    backlog = build_events(events, seed)
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-profile-"))
    os.environ.setdefault("LIENTHONG_SIGNING_KEYS", str(generate_keyring_file(data_dir / "signing-keys.json")))
    os.environ.setdefault("LIENTHONG_PSEUDONYM_KEY", BENCH_KEY.decode())
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = out_dir / "worker.txt"
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            print(f"publishing (batch {batch_size})...", flush=True)
            publish_backlog(broker.bootstrap, backlog, batch_size)
            _, counted, messages = bare_consume(broker.bootstrap)
            print(f"{counted:,} events in {messages:,} messages; one worker under py-spy...", flush=True)
            run = run_workers(broker.bootstrap, data_dir, 1, len(backlog), messages, profile=profile)
            print(f"worker: {len(backlog) / run.seconds:,.0f} events/s, "
                  f"{run.cpu_seconds / len(backlog) * 1e6:.0f} µs CPU per event (under py-spy)", flush=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return profile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lienthong-profile"))
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--summarise", type=Path, default=None, help="only summarise this raw profile")
    args = parser.parse_args(argv)
    profile = args.summarise or record(args.events, args.batch_size, args.out)
    print("\n".join(summarise(read_stacks(profile), args.top)))


if __name__ == "__main__":
    main()
