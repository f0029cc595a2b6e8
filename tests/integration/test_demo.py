"""`vigil demo`: the whole system on this machine, as `make demo` runs it.

Real processes throughout: the collector (uvicorn over TLS), Xvfb + openbox, the agent with its
pynput hooks, a Tk window typed into by xdotool. The test checks the demo's claims itself: the
captures in the collector's store open with the head's key, and nothing it started keeps running.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.x11, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def demo_processes(base: Path) -> list[str]:
    """Running processes the demo in ``base`` started: it tags each with VIGIL_DEMO_DIR."""
    tag = f"VIGIL_DEMO_DIR={base}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if tag not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found.append(f"{pid}: {cmdline}")
    return found


def output_value(out: str, key: str) -> Path:
    lines = [ln for ln in out.splitlines() if ln.startswith(f"{key}=")]
    assert len(lines) == 1, f"expected one {key}= line in:\n{out}"
    return Path(lines[0].split("=", 1)[1])


def test_demo_check_captures_and_opens_with_the_head_key(tmp_path: Path) -> None:
    base = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # as on a headless CI runner
    done = subprocess.run([sys.executable, "-m", "vigil", "demo", "--check", "--dir", str(base)],
                          capture_output=True, text=True, timeout=400, env=env, cwd=REPO,
                          check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    data_dir = output_value(done.stdout, "data_dir")
    spool_dir = output_value(done.stdout, "spool_dir")
    assert data_dir.is_relative_to(base) and spool_dir.is_relative_to(base)
    assert (data_dir / "settings.toml").is_file() and spool_dir.is_dir()  # left for inspection
    assert "check passed" in done.stdout

    # Independently of the demo's own check: open what the collector stored with the head's key.
    from PIL import Image
    from sqlmodel import select

    from collector.admin import open_database
    from collector.settings import Settings
    from collector.store.blobs import BlobStore
    from collector.store.models import Event, Keyholder
    from core import envelope
    from core.keys import KeyFile

    password = json.loads((data_dir / "demo-passwords.json").read_text())["head"]
    settings = Settings.load(data_dir)
    db = open_database(settings)
    try:
        with db.session() as session:
            head = session.exec(select(Keyholder).where(Keyholder.name == "head")).one()
            key = KeyFile.from_bytes(head.key_file).unlock(password)
            events = session.exec(select(Event)).all()
            assert events
            categories = set()
            for event in events:
                opened = envelope.open(BlobStore(settings.blob_dir).get(event.blob_key), key)
                assert opened.header["title"] == "Homework notes - Vigil demo"
                with Image.open(io.BytesIO(opened.body)) as image:
                    assert image.size[0] > 0 and image.size[1] > 0
                categories.add(event.category)
                # The harmless sentences never fire.
                assert "mitochondria" not in opened.header["context"]
                assert "laughing" not in opened.header["context"]
    finally:
        db.close()
    assert categories <= {"suicide", "bullying", "violence"}

    # Sealed at the source: no typed phrase lies in the clear in the spool or the data dir.
    for path in [*data_dir.rglob("*"), *spool_dir.rglob("*")]:
        if path.is_file():
            assert b"want to kill myself" not in path.read_bytes(), path
    assert not demo_processes(base), "the demo left processes running"

    # Again in the same directory: the same collector and keys, a fresh agent, new captures.
    again = subprocess.run([sys.executable, "-m", "vigil", "demo", "--check", "--dir", str(base)],
                           capture_output=True, text=True, timeout=400, env=env, cwd=REPO,
                           check=False)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert output_value(again.stdout, "data_dir") == data_dir
    assert output_value(again.stdout, "spool_dir") != spool_dir
    assert "check passed" in again.stdout


def test_demo_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    base = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    # Started with SIGINT ignored, as a background job of a script is (a shell without job
    # control passes SIG_IGN on, and Python then installs no KeyboardInterrupt handler): Ctrl-C
    # must still stop the demo. Without its own handler it ignored Ctrl-C for the whole minute.
    ignore_then_exec = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    proc = subprocess.Popen([sys.executable, "-c", ignore_then_exec, "-m", "vigil", "demo",
                             "--dir", str(base)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO)
    assert proc.stdout is not None
    seen: list[str] = []

    def banner_shown() -> bool:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        seen.append(line)
        if not line and proc.poll() is not None:
            raise AssertionError("the demo exited early:\n" + "".join(seen))
        return "Ctrl-C stops everything" in line

    try:
        wait_until(banner_shown, 300, interval=0, what="the demo's dashboard banner")
        out = "".join(seen)
        assert "Open the dashboard: https://127.0.0.1:" in out
        assert "head" in out and "technician" in out  # the demo passwords are printed
        running = " ".join(demo_processes(base))
        for part in ("Xvfb", "openbox", "collector serve", "agent run", "notepad"):
            assert part in running, f"{part} should be running: {running}"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        left = demo_processes(base)
        for entry in left:  # a failed run must not leave a collector and an agent for later tests
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
    assert "stopped everything the demo started" in proc.stdout.read()
    assert not left, "Ctrl-C left processes running"

