"""Benchmark: sealing and opening a 300 KB event for 2 recipients, with both KEMs.

Prints a table of median milliseconds (with the ratio to a baseline measured in the same
process: one plain AES-256-GCM encryption of the same body, the floor any sealing pays), the
password unlock with the default KDF, the memory peak for a 20 MB body, and as the last line:

    seal_ms_median=<n> open_ms_median=<n> unlock_s=<n>     (hybrid KEM, 2 recipients)

Run: .venv/bin/python bench/envelope.py [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import envelope, keys

BODY_SIZE = 300 * 1024
PASSWORD = "benchmark password"
META = envelope.Metadata("bench-event", "bench-device", datetime.now(UTC), "bullying",
                         3, "bullying.example", "keyboard")
HEADER = {"user": "pupil", "host": "LAB-01", "title": "Chat - Browser", "app": "browser",
          "context": "some words around the match", "match": {"start": 5, "end": 10,
          "text": "words"}, "source": "keyboard", "count": 1, "media_type": "image/webp"}


def median_ms(call: Callable[[], object], rounds: int) -> float:
    for _ in range(min(10, rounds)):
        call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def memory_ratio(recipients: list[keys.PublicKey], key: keys.PrivateKey) -> tuple[float, float]:
    body = os.urandom(20 * 1024 * 1024)
    peaks = []
    sealed = b""
    for step in ("seal", "open"):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        if step == "seal":
            sealed = envelope.seal(META, HEADER, body, recipients)
        else:
            envelope.open(sealed, key)
        peaks.append((tracemalloc.get_traced_memory()[1] - base) / len(body))
        tracemalloc.stop()
    return peaks[0], peaks[1]


def measure_kem(kem: keys.Kem, body: bytes, rounds: int) -> dict[str, float]:
    """Median ms of seal, open, open_header, read_meta and grant for ``body`` sealed to two keys of ``kem``."""
    fast = keys.Kdf.insecure_fast_for_tests()  # only the unlock row measures the real KDF
    _, head = keys.create("Bench Head", "head", PASSWORD, kem=kem, kdf=fast)
    _, tech = keys.create("Bench Tech", "technician", PASSWORD, kem=kem, kdf=fast)
    _, extra = keys.create("Bench New", "head", PASSWORD, kem=kem, kdf=fast)
    recipients = [head.public, tech.public]
    sealed = envelope.seal(META, HEADER, body, recipients)
    return {
        "seal": median_ms(lambda: envelope.seal(META, HEADER, body, recipients), rounds),
        "open": median_ms(lambda: envelope.open(sealed, head), rounds),
        "open_header": median_ms(lambda: envelope.open_header(sealed, head), rounds),
        "read_meta": median_ms(lambda: envelope.read_meta(sealed), rounds),
        "grant": median_ms(lambda: envelope.grant(sealed, head, extra.public), rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--unlock-rounds", type=int, default=5)
    args = parser.parse_args()

    body = os.urandom(BODY_SIZE)
    aead, nonce = AESGCM(secrets.token_bytes(32)), secrets.token_bytes(12)
    baseline = median_ms(lambda: aead.encrypt(nonce, body, b""), args.rounds)

    rows: list[tuple[str, str, float]] = [("baseline", "AES-256-GCM of the body", baseline)]
    results: dict[str, dict[str, float]] = {}
    for kem in (keys.Kem.HYBRID, keys.Kem.X25519):
        timings = measure_kem(kem, body, args.rounds)
        results[kem.value] = timings
        for op, ms in timings.items():
            rows.append((kem.value, op, ms))

    key_file, key = keys.create("Bench Unlock", "head", PASSWORD)  # default Argon2id parameters
    unlock_s = median_ms(lambda: key_file.unlock(PASSWORD), args.unlock_rounds) / 1000
    seal_peak, open_peak = memory_ratio([key.public], key)

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"envelope benchmark: body {BODY_SIZE // 1024} KB, 2 recipients, "
          f"{args.rounds} rounds, median; {os.cpu_count()} CPUs, load average {load}")
    print(f"{'kem':<18} {'operation':<26} {'ms':>9} {'x baseline':>11}")
    for kem_name, op, ms in rows:
        print(f"{kem_name:<18} {op:<26} {ms:>9.3f} {ms / baseline:>11.1f}")
    print(f"{'default KDF':<18} {'unlock (argon2id)':<26} {unlock_s * 1000:>9.1f}")
    print(f"memory peak, 20 MB body, 1 recipient: seal {seal_peak:.2f}x body, "
          f"open {open_peak:.2f}x body (allocated beyond the input)")
    hybrid = results[keys.Kem.HYBRID.value]
    print(f"seal_ms_median={hybrid['seal']:.3f} open_ms_median={hybrid['open']:.3f} "
          f"unlock_s={unlock_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
