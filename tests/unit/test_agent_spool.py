"""The spool: durable files, bounded, drops lowest severity oldest first, never 4 and 5."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from agent.spool import Spool


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_put_survives_a_restart_and_ack_removes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_events=10)
    a, b = ids(2)
    assert spool.put(a, 3, b"sealed-a")
    assert spool.put(b, 5, b"sealed-b")
    again = Spool(tmp_path, max_events=10)
    assert again.depth == 2
    batch = again.batch(10)
    assert [i.event_id for i in batch] == [b, a]  # most severe first
    assert batch[0].read() == b"sealed-b"
    assert again.ack([a]) == 1
    assert Spool(tmp_path).depth == 1
    files = [p for p in tmp_path.iterdir() if p.suffix == ".evt"]
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"


def test_put_is_idempotent_on_the_event_id(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (a,) = ids(1)
    spool.put(a, 2, b"x")
    spool.put(a, 2, b"x")
    assert spool.depth == 1


def test_full_spool_drops_oldest_of_lowest_severity_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_events=4)
    low_old, low_new, mid, high = ids(4)
    spool.put(low_old, 1, b"1")
    spool.put(mid, 3, b"3")
    spool.put(low_new, 1, b"1")
    spool.put(high, 5, b"5")
    extra = ids(1)[0]
    assert spool.put(extra, 2, b"2")
    left = {i.event_id for i in spool.batch(10)}
    assert low_old not in left and {low_new, mid, high, extra} == left
    assert spool.dropped == 1
    assert Spool(tmp_path, max_events=4).dropped == 1  # the count survives a restart


def test_severity_4_and_5_are_never_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_events=2)
    serious = ids(4)
    for i, eid in enumerate(serious):
        assert spool.put(eid, 4 + i % 2, b"s")
    assert spool.depth == 4 and spool.dropped == 0
    trivial = ids(1)[0]
    assert not spool.put(trivial, 1, b"t")  # it loses its own place
    assert spool.depth == 4 and spool.dropped == 1


def test_byte_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_events=100, max_bytes=250)
    first, *rest = ids(3)
    spool.put(first, 2, b"a" * 100)
    for eid in rest:
        spool.put(eid, 2, b"b" * 100)
    assert spool.size <= 250 and first not in spool


def test_quarantine_moves_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (a,) = ids(1)
    spool.put(a, 3, b"bad")
    spool.quarantine(a, "422 malformed")
    assert spool.depth == 0 and spool.quarantined == 1
    moved = [p.name for p in (tmp_path / "quarantine").iterdir()]
    assert any(n.endswith(f"{a}.evt") for n in moved)
    assert Spool(tmp_path).quarantined == 1


def test_half_written_files_are_cleaned_at_start(tmp_path: Path) -> None:
    Spool(tmp_path)
    (tmp_path / ".3-000000000009-abc.evt.tmp").write_bytes(b"partial")
    spool = Spool(tmp_path)
    assert spool.depth == 0
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert os.stat(tmp_path).st_mode & 0o077 == 0
