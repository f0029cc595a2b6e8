"""The spool on a disk that really fills up (a tiny tmpfs): make room, never lose 4-5, fail in one line."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.errors import SpoolError
from agent.spool import Spool
from tests.fixtures.faults import fill_disk, tmpfs_dir  # noqa: F401 - tmpfs_dir is a fixture


def new_id() -> str:
    return str(uuid.uuid4())


def test_full_disk_drops_less_severe_events_to_keep_a_severe_one(
        tmpfs_dir: Callable[[str], Path]) -> None:  # noqa: F811
    disk = tmpfs_dir("1m")
    spool = Spool(disk / "spool")
    low = [new_id() for _ in range(3)]
    for eid in low:
        assert spool.put(eid, 1, b"l" * 60_000)
    filler = fill_disk(disk, leave_bytes=0)
    severe = new_id()
    assert spool.put(severe, 5, b"s" * 100_000)  # needs the room of two low events
    assert severe in spool and spool.dropped >= 2
    assert spool.batch(1)[0].event_id == severe
    assert not any(p.name.endswith(".tmp") for p in (disk / "spool").iterdir())
    filler.unlink()


def test_full_disk_with_nothing_to_drop_is_one_clear_error(
        tmpfs_dir: Callable[[str], Path]) -> None:  # noqa: F811
    disk = tmpfs_dir("1m")
    spool = Spool(disk / "spool")
    kept = new_id()
    assert spool.put(kept, 5, b"k" * 1000)
    fill_disk(disk, leave_bytes=0)
    with pytest.raises(SpoolError) as err:
        spool.put(new_id(), 4, b"x" * 200_000)
    assert "\n" not in str(err.value) and "No space left" in str(err.value)
    assert kept in spool and spool.depth == 1  # nothing severe was given up
    assert not any(p.name.endswith(".tmp") for p in (disk / "spool").iterdir())
