"""Benchmark: granting a new keyholder access to stored events (collector.regrant).

Stores N sealed events (hybrid KEM, 2 recipients, BODY KB each) in a fresh collector database and
blob directory, then in rounds grants a third key and revokes it again, timing each whole run.
In the same process it measures two baselines on the same envelopes and disk: the crypto alone
(core.envelope.grant in memory) and writing + fsyncing the same bytes with BlobStore.put_many in
the same batch size. Their sum is the floor a safe rewrite pays; the table shows the ratio.

Prints a table of medians (ms per event) and as the last line:

    grant_events_per_s=<n> revoke_events_per_s=<n> grant_vs_floor=<n>

Run: .venv/bin/python bench/regrant.py [--events 500] [--body-kb 150] [--rounds 3]
     [--postgres]   (a fresh schema on VIGIL_TEST_PG_URL, dropped afterwards; default: SQLite
                    in a temporary directory)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from collector.ingest import blob_key_for
from collector.regrant import DEFAULT_BATCH, grant_all, revoke_all
from collector.store.blobs import BlobStore
from collector.store.db import Database, make_engine
from collector.store.models import Device, Event, utcnow
from collector.store.schema import upgrade
from core import envelope, keys
from tests.fixtures.db import drop_pg_schema, pg_schema_url

HEADER = {"user": "pupil", "host": "LAB-01", "title": "Chat - Browser", "app": "browser",
          "context": "some words around the match", "match": {"start": 5, "end": 10,
          "text": "words"}, "source": "typed", "count": 1, "media_type": "image/webp"}


def make_key(name: str, role: str) -> keys.PrivateKey:
    _file, private = keys.create(name, role, "benchmark password",
                                 kdf=keys.Kdf.insecure_fast_for_tests())
    return private


def store_events(db: Database, blobs: BlobStore, n: int, body_kb: int,
                 recipients: list[keys.PublicKey]) -> list[bytes]:
    device_id = str(uuid.uuid4())
    db.write(lambda s: s.add(Device(id=device_id, hostname="bench", secret_hash="x")))
    sealed, rows = [], []
    now = utcnow()
    for _ in range(n):
        event_id = str(uuid.uuid4())
        meta = envelope.Metadata(event_id, device_id, datetime.now(UTC), "bullying", 3,
                                 "bullying.example", "typed")
        data = envelope.seal(meta, HEADER, os.urandom(body_kb * 1024), recipients)
        key = blob_key_for(event_id, now)
        blobs.put(key, data)
        sealed.append(data)
        _meta, fprs = envelope.read_meta(data)
        rows.append(Event(id=event_id, device_id=device_id, time=now, received_at=now,
                          category="bullying", severity=3, rule="bullying.example",
                          source="typed", blob_key=key, size=len(data),
                          sha256=hashlib.sha256(data).hexdigest(),
                          recipients=list(fprs)).model_dump())
    db.write(lambda s: s.execute(insert(Event), rows))
    return sealed


def per_event_ms(seconds: float, n: int) -> float:
    return seconds * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--body-kb", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    schema = ""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-regrant-", dir=Path.cwd()) as tmp:
        if args.postgres:
            url, schema = pg_schema_url()
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        try:
            figures = run(url, Path(tmp), args.events, args.body_kb, args.rounds)
        finally:
            if schema:
                drop_pg_schema(schema)
    report(figures, args.events, args.body_kb, args.rounds,
           "PostgreSQL" if args.postgres else "SQLite")


def run(url: str, tmp: Path, events: int, body_kb: int, rounds: int
        ) -> dict[str, list[float]]:
    """Seconds per whole run of each step, one value per round."""
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    blobs = BlobStore(tmp / "blobs")
    head, tech, new = (make_key("head", "head"), make_key("tech", "technician"),
                       make_key("new", "head"))
    sealed = store_events(db, blobs, events, body_kb, [head.public, tech.public])
    n = len(sealed)
    figures: dict[str, list[float]] = {"crypto": [], "write": [], "grant": [], "revoke": []}
    try:
        for r in range(rounds):
            start = time.perf_counter()
            granted = [envelope.grant(data, head, new.public) for data in sealed]
            figures["crypto"].append(time.perf_counter() - start)

            start = time.perf_counter()
            for i in range(0, n, DEFAULT_BATCH):
                blobs.put_many([(f"floor/r{r}/e{j}", granted[j])
                                for j in range(i, min(n, i + DEFAULT_BATCH))])
            figures["write"].append(time.perf_counter() - start)
            for j in range(n):
                blobs.delete(f"floor/r{r}/e{j}")

            start = time.perf_counter()
            result = grant_all(db, blobs, head, new.public, actor="bench")
            figures["grant"].append(time.perf_counter() - start)
            assert result.changed == n and not result.failures, result

            start = time.perf_counter()
            result = revoke_all(db, blobs, new.fingerprint, "new", actor="bench")
            figures["revoke"].append(time.perf_counter() - start)
            assert result.changed == n and not result.failures, result
    finally:
        db.close()
    return figures


def report(figures: dict[str, list[float]], n: int, body_kb: int, rounds: int,
           backend: str) -> None:
    median = {name: statistics.median(values) for name, values in figures.items()}
    floor = median["crypto"] + median["write"]
    table = [
        ("envelope.grant in memory (crypto only)", median["crypto"]),
        (f"BlobStore.put_many, batches of {DEFAULT_BATCH} (write+fsync)", median["write"]),
        ("floor: crypto + write", floor),
        ("grant_all (whole run)", median["grant"]),
        ("revoke_all (whole run)", median["revoke"]),
    ]
    print(f"{n} events of {body_kb} KB, hybrid KEM, {backend}, median of {rounds} rounds")
    print(f"{'step':<52} {'ms/event':>9} {'events/s':>9} {'x floor':>8}")
    for name, seconds in table:
        print(f"{name:<52} {per_event_ms(seconds, n):>9.2f} {n / seconds:>9.0f} "
              f"{seconds / floor:>8.2f}")
    print(f"grant_events_per_s={n / median['grant']:.0f} "
          f"revoke_events_per_s={n / median['revoke']:.0f} "
          f"grant_vs_floor={median['grant'] / floor:.2f}")


if __name__ == "__main__":
    main()
