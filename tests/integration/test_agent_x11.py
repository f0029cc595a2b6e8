"""The agent end to end: a real X server, keys typed with xdotool, a real collector over TLS.

Each test enrols `vigil agent` with the collector_server fixture (the real `vigil agent enrol`
command, pinned by certificate fingerprint), runs `vigil agent run` as a normal process on the
Xvfb + openbox display, types into titled windows, and then reads what the collector stored:
the clear row, and the envelope opened with a keyholder's key.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.notice import NOTICE_TITLE
from tests.fixtures.faults import AgentRun
from tests.fixtures.x11 import X11, wait_until

pytestmark = [pytest.mark.x11, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IMAGE_MAGIC = (re.compile(rb"RIFF....WEBP", re.DOTALL), re.compile(re.escape(b"\x89PNG\r\n\x1a\n")),
               re.compile(rb"JFIF"), re.compile(rb"\xff\xd8\xff"))


def agent_process(x11: X11, base: Path) -> AgentRun:
    """The real ``vigil agent run`` (the fault tests' AgentRun), heartbeat every 2 s."""
    return AgentRun(x11, base, env_extra={"VIGIL_AGENT_HEARTBEAT_S": "2"})


def enrol(agent: AgentRun, server: Any) -> None:
    """Run the paste-ready enrolment line the collector prints (``--token=`` form: a URL-safe
    token may start with '-', which argparse would read as an option)."""
    argv = server.enrol_command(server.make_token())[1:]
    i = argv.index("--token")
    argv[i:i + 2] = [f"--token={argv[i + 1]}"]
    done = agent.vigil(*argv, "--config-dir", str(agent.config_dir))
    assert done.returncode == 0, done.stderr
    assert "enrolled as device" in done.stdout
    assert agent.config_dir.stat().st_mode & 0o077 == 0
    for name in ("enrolment.json", "trust.json", "policy.json"):
        assert (agent.config_dir / name).stat().st_mode & 0o777 == 0o600, name


@pytest.fixture
def enrolled(x11: X11, collector_server: Any, tmp_path: Path) -> Iterator[AgentRun]:
    agent = agent_process(x11, tmp_path)
    enrol(agent, collector_server)
    try:
        yield agent
    finally:
        agent.stop()
        print(f"--- agent log ---\n{agent.log()[-4000:]}")  # shown by pytest when a test fails


@pytest.fixture
def agent(enrolled: AgentRun) -> AgentRun:
    enrolled.start()
    return enrolled


def stored_events(server: Any) -> list[Any]:
    from sqlmodel import select

    from collector.store.models import Event

    db = server.database()
    try:
        with db.session() as session:
            return list(session.exec(select(Event).order_by(Event.received_at)).all())
    finally:
        db.close()


def open_event(server: Any, row: Any) -> Any:
    from collector.store.blobs import BlobStore
    from core import envelope

    data = BlobStore(server.settings().blob_dir).get(row.blob_key)
    return envelope.open(data, server.keys.head.key)


def wait_events(server: Any, n: int, timeout: float = 30.0) -> list[Any]:
    def enough() -> list[Any] | None:
        rows = stored_events(server)
        return rows if len(rows) >= n else None

    return wait_until(enough, timeout, interval=0.2, what=f"{n} event(s) at the collector")


def assert_screenshot(opened: Any) -> None:
    img = Image.open(io.BytesIO(opened.body))
    img.load()
    assert img.size == (1920, 1080)
    assert opened.header["media_type"] == Image.MIME[img.format]


def type_line(x: X11, text: str) -> None:
    x.type(text)
    x.key("Return")


def test_backspace_edited_text_reaches_the_collector(agent: AgentRun, x11: X11,
                                                     collector_server: Any) -> None:
    agent.open_window("Notes - pupil")
    x11.type("kill mysefl")
    x11.key("BackSpace", "BackSpace")
    x11.type("lf")
    x11.key("Return")
    (row,) = wait_events(collector_server, 1)
    assert (row.category, row.severity, row.source) == ("suicide", 5, "typed")
    opened = open_event(collector_server, row)
    assert opened.header["context"] == "kill myself"
    assert opened.header["match"]["text"] == "kill myself"
    assert opened.header["title"] == "Notes - pupil"
    assert opened.header["app"] == "Xmessage"
    assert_screenshot(opened)
    wait_until(lambda: not agent.spooled(), 20, what="the spool to empty after the ack")


def test_trigger_in_a_window_title(agent: AgentRun, x11: X11, collector_server: Any) -> None:
    agent.open_window("how to kill myself - Search", kind="tk")
    (row,) = wait_events(collector_server, 1)
    assert (row.category, row.source) == ("suicide", "title")
    opened = open_event(collector_server, row)
    assert opened.header["title"] == "how to kill myself - Search"
    assert "kill myself" in opened.header["context"]
    assert_screenshot(opened)


def test_benign_sentence_does_not_fire(agent: AgentRun, x11: X11, collector_server: Any) -> None:
    agent.open_window("Homework")
    type_line(x11, "we killed it at football and the skillset of the team was great")
    type_line(x11, "we are studying the assessment for sex education in Scunthorpe")
    # A trigger typed afterwards proves the benign lines were processed (events are in order).
    type_line(x11, "i want to kill myself")
    rows = wait_events(collector_server, 1)
    assert len(rows) == 1
    assert open_event(collector_server, rows[0]).header["context"] == "i want to kill myself"


def test_flood_control_makes_one_event_with_a_count(agent: AgentRun, x11: X11,
                                                    collector_server: Any) -> None:
    agent.open_window("Chat")
    for _ in range(6):
        type_line(x11, "kill myself")
    wait_events(collector_server, 1)

    def counted() -> bool:
        (fresh,) = stored_events(collector_server)
        return fresh.repeat_count == 6

    wait_until(counted, 30, interval=0.2, what="the repeat count to reach 6")
    assert len(stored_events(collector_server)) == 1


def test_paste_is_matched_as_one_block(agent: AgentRun, x11: X11, collector_server: Any) -> None:
    agent.open_window("Editor")
    clip = x11.set_clipboard("sometimes i think about how to kill myself")
    try:
        x11.key("ctrl+v")
        (row,) = wait_events(collector_server, 1)
    finally:
        clip.terminate()
        clip.wait(5)
    assert row.source == "paste"
    assert "kill myself" in open_event(collector_server, row).header["context"]


def test_collector_down_and_back_loses_and_duplicates_nothing(
        agent: AgentRun, x11: X11, collector_server: Any) -> None:
    agent.open_window("Offline notes")
    collector_server.stop()
    type_line(x11, "i want to kill myself")
    wait_until(lambda: len(agent.spooled()) == 1, 20, what="the first event in the spool")
    type_line(x11, "i will hang myself")
    wait_until(lambda: len(agent.spooled()) == 2, 20, what="the second event in the spool")
    # The technician's `vigil agent status` says what is wrong while it is wrong.
    down = wait_until(lambda: agent.status().get("spool_depth") == 2
                      and agent.status().get("last_error"), 20, what="the error in the status")
    assert "collector" in str(down).lower()
    shown = agent.vigil("agent", "status", "--config-dir", str(agent.config_dir),
                        "--spool-dir", str(agent.spool_dir))
    assert shown.returncode == 0 and "last_error: -" not in shown.stdout
    collector_server.start()
    rows = wait_events(collector_server, 2, timeout=60)
    wait_until(lambda: not agent.spooled(), 30, what="the spool to empty")
    wait_until(lambda: agent.status().get("last_error") == "", 30, what="the error to clear")
    assert len(rows) == 2 and len({r.id for r in rows}) == 2
    contexts = sorted(open_event(collector_server, r).header["context"] for r in rows)
    assert contexts == ["i want to kill myself", "i will hang myself"]
    assert len(stored_events(collector_server)) == 2  # nothing arrived twice


def test_nothing_readable_is_left_behind(agent: AgentRun, x11: X11,
                                         collector_server: Any) -> None:
    sentence = "honestly tonight i want to kill myself"
    agent.open_window("Diary window")
    collector_server.stop()  # so the sealed event sits in the spool for a while
    type_line(x11, sentence)
    wait_until(lambda: agent.spooled(), 20, what="the event in the spool")
    spool_bytes = b"".join(p.read_bytes() for p in agent.spool_dir.rglob("*") if p.is_file())
    collector_server.start()
    (row,) = wait_events(collector_server, 1, timeout=60)
    assert open_event(collector_server, row).header["context"] == sentence
    wait_until(lambda: not agent.spooled(), 30, what="the spool to empty")
    agent.stop()
    collector_server.stop()
    secrets = [sentence.encode(), b"Diary window", sentence.encode("utf-16-le")]
    for root in (agent.spool_dir, collector_server.data_dir):
        blobs = [spool_bytes] if root == agent.spool_dir else []
        blobs += [p.read_bytes() for p in root.rglob("*") if p.is_file()]
        for data in blobs:
            for secret in secrets:
                assert secret not in data
            for magic in IMAGE_MAGIC:
                assert not magic.search(data), f"an image signature in the clear under {root}"
    assert sentence not in agent.log()


def test_notice_shown_once_per_session_and_agent_is_visible(enrolled: AgentRun,
                                                            x11: X11) -> None:
    import psutil

    enrolled.start()
    wid = wait_until(lambda: x11.find_window(NOTICE_TITLE), 20, what="the notice window")
    assert "monitoring notice: This device is monitored" in enrolled.log()
    assert enrolled.proc is not None
    cmdline = " ".join(psutil.Process(enrolled.proc.pid).cmdline())
    assert "vigil agent run" in cmdline
    subprocess.run(["xdotool", "windowkill", str(wid)], env=x11.env, check=False)
    wait_until(lambda: x11.find_window(NOTICE_TITLE) is None, 20, what="the notice to close")
    enrolled.stop()
    enrolled.start()  # same session: logged again, but no second window
    enrolled.open_window("After restart")  # the agent is up and handling windows again
    assert enrolled.log().count("monitoring notice:") == 2
    assert x11.find_window(NOTICE_TITLE) is None


def _docked_icon(x11: X11, title: str) -> tuple[int, int, int, int] | None:
    """Root-relative (x, y, w, h) of the window titled ``title`` once a tray has reparented it
    (docked); None while it is not there or still a child of the root."""
    from Xlib import X, Xatom, display
    from Xlib.error import XError

    d = display.Display(x11.display)
    try:
        root = d.screen().root
        pending = [root]
        while pending:
            win = pending.pop()
            try:
                children = win.query_tree().children
            except XError:
                continue
            for child in children:
                pending.append(child)
                try:
                    name = child.get_full_property(Xatom.WM_NAME, X.AnyPropertyType)
                    if name is None or name.value != title.encode():
                        continue
                    if child.query_tree().parent.id == root.id:
                        return None  # mapped on its own, not docked
                    geom = child.get_geometry()
                    pos = child.translate_coords(root, 0, 0)
                    return (-pos.x, -pos.y, geom.width, geom.height)
                except XError:
                    continue
        return None
    finally:
        d.close()


def test_tray_icon_docks_when_a_tray_appears_opens_the_notice_and_dies_with_the_agent(
        enrolled: AgentRun, x11: X11) -> None:
    import signal

    import psutil

    from agent.tray import TRAY_TITLE

    enrolled.start()
    # The session's first notice window comes first; close it, so the one the icon opens shows.
    wid = wait_until(lambda: x11.find_window(NOTICE_TITLE), 20, what="the first notice window")
    subprocess.run(["xdotool", "windowkill", str(wid)], env=x11.env, check=False)
    # No tray yet (openbox has none): the icon's process says so and waits for one.
    wait_until(lambda: "no system tray on this desktop yet" in enrolled.log(), 30,
               what="the tray process waiting for a tray")
    assert enrolled.proc is not None
    children = psutil.Process(enrolled.proc.pid).children()
    # The closed notice window's process was reaped (no zombie for the rest of the session).
    wait_until(lambda: all(c.status() != psutil.STATUS_ZOMBIE for c in children
                           if c.is_running()), 10, what="the closed notice to be reaped")
    tray_procs = [c for c in children if c.is_running() and "tray" in c.cmdline()]
    assert len(tray_procs) == 1
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype",
                               "request", "--height", "24", "--SetDockType", "true"],
                              env=x11.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def laid_out() -> tuple[int, int, int, int] | None:
        # Reparented comes first, as a 1x1 window at -1,-1; the tray sizes it a moment later.
        found = _docked_icon(x11, TRAY_TITLE)
        return found if found is not None and min(found[2], found[3]) >= 16 else None

    try:
        wait_until(laid_out, 30, what="the icon docked and laid out in the tray")
        # Logged once the icon listens for clicks (after docking): only then can a click count.
        wait_until(lambda: "tray icon shown" in enrolled.log(), 20, what="the icon ready")
        x, y, w, h = wait_until(laid_out, 10, what="the icon's place")  # type: ignore[misc]
        x11.xdotool("mousemove", str(x + w // 2), str(y + h // 2))
        x11.xdotool("click", "1")
        wait_until(lambda: x11.find_window(NOTICE_TITLE), 20, what="the notice, from the icon")
        # The panel restarts (a crash, a settings change): the icon comes back to the new one.
        trayer.terminate()
        trayer.wait(10)
        trayer = subprocess.Popen(trayer.args, env=x11.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_until(lambda: "a new tray appeared" in enrolled.log(), 30, what="the new tray")
        wait_until(laid_out, 30, what="the icon docked again")
        # The agent dies without a word (SIGKILL to it alone): the icon and its notice go too,
        # so nothing on screen claims monitoring that has stopped.
        os.kill(enrolled.proc.pid, signal.SIGKILL)
        enrolled.proc.wait(20)
        wait_until(lambda: not tray_procs[0].is_running() or tray_procs[0].status() == "zombie",
                   20, what="the tray process to end")
        wait_until(lambda: _docked_icon(x11, TRAY_TITLE) is None, 20, what="the icon to go")
        wait_until(lambda: x11.find_window(NOTICE_TITLE) is None, 20,
                   what="the notice it opened to close")
    finally:
        trayer.terminate()
        trayer.wait(10)


def _not_today() -> list[str]:
    from zoneinfo import ZoneInfo

    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    today = days[datetime.now(ZoneInfo("Europe/London")).weekday()]
    return [d for d in days if d != today]


@pytest.fixture(params=["off-site", "outside the schedule"])
def restricted_collector(request: pytest.FixtureRequest,
                         collector_factory: Callable[..., Any]) -> Any:
    from collector.settings import PolicySettings

    if request.param == "off-site":
        policy = PolicySettings(onsite_networks=["203.0.113.0/24"])
    else:
        policy = PolicySettings(schedule={"days": _not_today(), "start": "00:00", "end": "24:00",
                                          "timezone": "Europe/London"})
    return collector_factory(policy=policy)


def test_no_capture_off_site_or_outside_the_schedule(x11: X11, restricted_collector: Any,
                                                     tmp_path: Path) -> None:
    offsite_collector = restricted_collector
    agent = agent_process(x11, tmp_path)
    enrol(agent, offsite_collector)
    agent.start()
    try:
        agent.open_window("kill myself - off site")
        type_line(x11, "i want to kill myself")
        # The agent handles input in order: once it has seen the next window, it has handled
        # every key above (and would have sealed and spooled an event by then).
        agent.open_window("After the typing")
        assert agent.spooled() == []
        # A heartbeat after that: the device is alive, talking to the collector, and sent nothing.
        seen = datetime.now(UTC)
        wait_until(lambda: _last_seen(offsite_collector) > seen, 30, interval=0.2,
                   what="a heartbeat after the typing")
        assert stored_events(offsite_collector) == []
        assert agent.spooled() == []
    finally:
        agent.stop()


def _last_seen(server: Any) -> datetime:
    from sqlmodel import select

    from collector.store.models import Device

    db = server.database()
    try:
        with db.session() as session:
            seen = [d.last_seen for d in session.exec(select(Device)).all() if d.last_seen]
    finally:
        db.close()
    latest = max(seen, default=datetime.min.replace(tzinfo=UTC))
    return latest if latest.tzinfo else latest.replace(tzinfo=UTC)


@pytest.mark.parametrize(("env", "message"), [
    ({"DISPLAY": ""}, "no display"),
    ({"DISPLAY": "", "WAYLAND_DISPLAY": "wayland-0"}, "Wayland session without XWayland"),
])
def test_no_display_is_one_clear_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    full = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    full.update({k: v for k, v in env.items() if v})
    done = subprocess.run([sys.executable, "-m", "vigil", "agent", "run", "--config-dir",
                           str(tmp_path)], env=full, cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil: ") and message in lines[0]


def test_unknown_log_level_is_one_clear_line(tmp_path: Path) -> None:
    env = dict(os.environ, VIGIL_AGENT_LOG_LEVEL="chatty")
    done = subprocess.run([sys.executable, "-m", "vigil", "agent", "run", "--config-dir",
                           str(tmp_path)], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("vigil: unknown log level 'chatty' (VIGIL_AGENT_LOG_LEVEL): use debug, "
                           "info, warning or error\n")


def test_enrol_refuses_a_wrong_certificate_or_keyholder_pin(x11: X11, collector_server: Any,
                                                           tmp_path: Path) -> None:
    agent = agent_process(x11, tmp_path)
    base = ["agent", "enrol", "--collector", collector_server.url, "--config-dir",
            str(agent.config_dir)]
    wrong_cert = agent.vigil(*base, f"--token={collector_server.make_token()}", "--trust",
                             collector_server.keyset_fingerprint, "--ca-fingerprint", "ab" * 32)
    assert wrong_cert.returncode == 1 and wrong_cert.stdout == ""
    assert len(wrong_cert.stderr.strip().splitlines()) == 1
    assert "not the pinned one" in wrong_cert.stderr
    wrong_trust = agent.vigil(*base, f"--token={collector_server.make_token()}", "--trust",
                              "vks1:" + "0" * 64, "--ca-fingerprint",
                              collector_server.cert_fingerprint)
    assert wrong_trust.returncode == 1
    assert "does not match the --trust fingerprint" in wrong_trust.stderr
    assert not (agent.config_dir / "enrolment.json").exists()
    ca = agent.vigil(*base, f"--token={collector_server.make_token()}", "--trust",
                     collector_server.keyset_fingerprint, "--ca", str(collector_server.ca_cert))
    assert ca.returncode == 0, ca.stderr


def _publish(server: Any, settings: Any) -> None:
    from collector.publishing import publish_as

    db = server.database()
    try:
        publish_as(db, settings, server.keys.head.name, server.keys.head.password, actor="test")
    finally:
        db.close()


def test_policy_refreshed_by_etag_and_untrusted_policy_refused(
        agent: AgentRun, collector_server: Any, stranger_key: Any) -> None:
    import dataclasses

    from collector.store.models import PolicyRecord
    from core.policy import Policy, Trust, sign

    settings = collector_server.settings()
    _publish(collector_server, settings.with_overrides(
        policy=dataclasses.replace(settings.policy, notice="Second notice for the test")))
    wait_until(lambda: "running under policy serial 2" in agent.log(), 30,
               what="the agent to take policy 2")
    trust = Trust.from_json((agent.config_dir / "trust.json").read_bytes())
    assert trust.serial == 2

    # A policy signed by a key the device does not trust, served as the newest one.
    forged = sign(Policy(serial=3, keyholders=(stranger_key.public,), notice="forged"),
                  stranger_key.key)
    db = collector_server.database()
    try:
        db.write(lambda s: s.add(PolicyRecord(serial=3, signed=forged.to_bytes(),
                                              etag=forged.digest, signer=stranger_key.fingerprint)))
    finally:
        db.close()
    wait_until(lambda: "refused a policy from the collector" in agent.log(), 30,
               what="the forged policy to be refused")
    assert Trust.from_json((agent.config_dir / "trust.json").read_bytes()).serial == 2


def _device(server: Any) -> Any:
    from sqlmodel import select

    from collector.store.models import Device

    db = server.database()
    try:
        with db.session() as session:
            return session.exec(select(Device)).one()
    finally:
        db.close()


def test_rejected_event_is_quarantined_and_reported(enrolled: AgentRun,
                                                    collector_server: Any) -> None:
    import uuid

    # A damaged spool file: the collector refuses it with a 4xx that retrying cannot fix.
    enrolled.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    bad_id = str(uuid.uuid4())
    (enrolled.spool_dir / f"3-000000000001-{bad_id}.evt").write_bytes(b"not an envelope")
    enrolled.start()
    wait_until(lambda: list((enrolled.spool_dir / "quarantine").glob(f"*{bad_id}.evt")), 30,
               what="the damaged event in quarantine")
    assert not enrolled.spooled()
    wait_until(lambda: _device(collector_server).quarantined == 1, 30, interval=0.2,
               what="the heartbeat to report the quarantined event")
    status = enrolled.vigil("agent", "status", "--json", "--config-dir", str(enrolled.config_dir),
                            "--spool-dir", str(enrolled.spool_dir))
    assert status.returncode == 0 and '"quarantined": 1' in status.stdout


def test_revoked_device_stops_uploading_and_keeps_its_spool(
        agent: AgentRun, x11: X11, collector_server: Any) -> None:
    from collector.devices import revoke

    device_id = _device(collector_server).id
    db = collector_server.database()
    try:
        db.write(lambda s: revoke(s, device_id, actor="test", reason="stolen laptop"))
    finally:
        db.close()
    agent.open_window("After revocation")
    type_line(x11, "i want to kill myself")
    wait_until(lambda: len(agent.spooled()) == 1, 30, what="the event in the spool")
    wait_until(lambda: "no longer accepts this device" in agent.log(), 30,
               what="the agent to hear 401 re-enrol")
    # Uploads now wait for a new enrolment: a heartbeat period later the event is still here.
    status = agent.spool_dir / "status.json"
    wait_until(lambda: status.exists() and '"needs_enrolment": true' in status.read_text(), 30,
               what="the status to say the device must be enrolled again")
    assert len(agent.spooled()) == 1  # kept, not dropped
    assert stored_events(collector_server) == []
    assert agent.proc is not None and agent.proc.poll() is None  # still running, still visible


def test_same_title_does_not_fire_again_within_the_cool_down(
        agent: AgentRun, x11: X11, collector_server: Any) -> None:
    risky = agent.open_window("how to kill myself - Search", kind="tk")
    wait_events(collector_server, 1)
    agent.open_window("Homework")
    agent.activate(risky)  # the same title in front again, within the 60 s cool-down
    agent.open_window("Chat")
    type_line(x11, "i will hang myself")  # processed after the refocus: proves it was handled
    rows = wait_events(collector_server, 2)
    title_event = next(r for r in rows if r.source == "title")
    assert title_event.repeat_count == 1
    repeats = agent.spool_dir / "repeats.json"
    assert not repeats.exists() or repeats.read_text() == "[]"
    assert len(stored_events(collector_server)) == 2
