"""What proving the sender costs: signature checks per message, and the worker's core with and without.

Run by ``lienthong bench`` on its own backlog, or alone (``python -m bench.signing``):

* HMAC-SHA256 verify (``Keyring.verify``) per single-event message and per batch;
* the worker's core (:class:`streams.processor.Processor`) per event with
  verification on (signature, source check, audit record) and off;
* Ed25519 verify of the same messages, when the ``cryptography`` package is
  importable, for the choice between the two (``schemas/signing.py``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.workload import Message, build_events, encode_messages
from schemas.codec import EventCodec
from schemas.signing import Keyring, SigningKey
from schemas.vocabulary import AGENCIES
from streams.processor import Processor

PARTITIONS = 8
#: Each figure is the best of this many timed passes (the least disturbed by other tenants).
PASSES = 5


@dataclass
class SigningFigures:
    single_verify_us: float
    batch_verify_us: float
    batch_events: float
    core_on_us: float
    core_off_us: float
    ed25519_verify_us: float | None

    def lines(self) -> list[str]:
        out = [
            f"    signature check (HMAC-SHA256): {self.single_verify_us:.2f} µs per single-event message, "
            f"{self.batch_verify_us:.1f} µs per batch of {self.batch_events:.0f} "
            f"({self.batch_verify_us / self.batch_events:.3f} µs per event)",
            f"    worker core per event, batched: {self.core_on_us:.1f} µs verified (signature, source, audit) "
            f"vs {self.core_off_us:.1f} µs unverified ({self.core_on_us - self.core_off_us:+.1f} µs)",
        ]
        if self.ed25519_verify_us is not None:
            out.append(f"    for comparison, Ed25519 verify: {self.ed25519_verify_us:.1f} µs per message")
        return out


def bench_keyring() -> Keyring:
    return Keyring(SigningKey(f"{a.lower()}-bench", a, secrets.token_hex(32).encode()) for a in AGENCIES)


def _agency(codec: EventCodec, message: Message) -> str:
    events = codec.decode_message(message.value)
    return str(events[0]["source"])


def _best(run: Callable[[], Any], n: int, passes: int = PASSES) -> float:
    """Best µs per item over ``passes`` passes of ``run`` (which handles ``n`` items)."""
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / max(n, 1) * 1e6


def _signed(codec: EventCodec, keyring: Keyring, messages: list[Message]) -> list[tuple[Message, list[tuple[str, bytes]]]]:
    return [(m, keyring.signing_key(_agency(codec, m)).headers(m.value)) for m in messages]


def _core(codec: EventCodec, keyring: Keyring | None, signed: list[tuple[Message, list[tuple[str, bytes]]]]) -> None:
    processor = Processor(codec, keyring=keyring)
    for offset, (m, headers) in enumerate(signed):
        processor.process(m.topic, m.partition, offset, m.value, 1_717_200_000_000, 1_717_200_000_000, headers=headers)


def measure(events: list[dict[str, Any]], batch_size: int, singles: int = 5000) -> SigningFigures:
    codec = EventCodec()
    keyring = bench_keyring()
    single = _signed(codec, keyring, encode_messages(events[:singles], 1, PARTITIONS, codec))
    batched = _signed(codec, keyring, encode_messages(events, batch_size, PARTITIONS, codec))
    verify = keyring.verify

    def verify_all(signed: list[tuple[Message, list[tuple[str, bytes]]]]) -> None:
        for m, headers in signed:
            verify(m.value, headers)

    n_events = sum(m.events for m, _ in batched)
    on = off = float("inf")
    for _ in range(PASSES):  # interleaved, so both see the same load on a shared machine
        on = min(on, _best(lambda: _core(codec, keyring, batched), n_events, passes=1))
        off = min(off, _best(lambda: _core(codec, None, batched), n_events, passes=1))
    return SigningFigures(
        single_verify_us=_best(lambda: verify_all(single), len(single)),
        batch_verify_us=_best(lambda: verify_all(batched), len(batched)),
        batch_events=n_events / len(batched),
        core_on_us=on,
        core_off_us=off,
        ed25519_verify_us=_ed25519([m.value for m, _ in single]),
    )


def _ed25519(values: list[bytes]) -> float | None:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        return None
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    signatures = [key.sign(v) for v in values]

    def verify_all() -> None:
        for value, signature in zip(values, signatures, strict=True):
            public.verify(signature, value)

    return _best(verify_all, len(values))


if __name__ == "__main__":
    for line in measure(build_events(50_000), 500).lines():
        print(line)
