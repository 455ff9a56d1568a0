"""HMAC-SHA256 against Ed25519 for message signatures: the measurement behind the choice.

Standalone (standard library, plus ``cryptography`` for Ed25519), so it runs with
any Python that has ``cryptography`` even where the hub's venv does not:
``python3 bench/signing_choice.py``. Message sizes: a single event (~300 bytes)
and a 500-event batch (~110 KB).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time


def per_op_us(run, n: int, passes: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    secret = os.urandom(32)
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    for label, size, n in (("single event, 300 B", 300, 20_000), ("batch of 500, 110 KB", 110_000, 500)):
        values = [os.urandom(size) for _ in range(n)]
        macs = [hmac.new(secret, v, hashlib.sha256).hexdigest().encode() for v in values]
        sigs = [key.sign(v) for v in values]

        def verify_hmac(values: list[bytes] = values, macs: list[bytes] = macs) -> None:
            for v, m in zip(values, macs, strict=True):
                hmac.compare_digest(hmac.new(secret, v, hashlib.sha256).hexdigest().encode(), m)

        def verify_ed(values: list[bytes] = values, sigs: list[bytes] = sigs) -> None:
            for v, s in zip(values, sigs, strict=True):
                public.verify(s, v)

        print(f"{label:22} HMAC-SHA256 verify {per_op_us(verify_hmac, n):8.2f} µs   "
              f"Ed25519 verify {per_op_us(verify_ed, n):8.2f} µs")


if __name__ == "__main__":
    main()
