"""The supervisor as root, the session agent as an unprivileged user it starts, on Xvfb, with a
real collector: what a pupil cannot do, and what is reported when someone tries (issue 15).

The supervisor is `vigil agent supervise --display :N --user NAME` (no logind here), its system
paths under a temporary root-owned directory; the user is created by the test (useradd) and
removed after. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.supervisor import (  # noqa: F401
    REPO,
    Pupil,
    SupervisorRun,
    pupil,
    supervisor_base,
)
from tests.fixtures.x11 import X11, wait_until
from tests.integration.test_agent_x11 import open_event, stored_events

pytestmark = [pytest.mark.x11, pytest.mark.slow]


def wait_rule(server: Any, rule: str, timeout: float = 30.0) -> Any:
    """The first event of ``rule`` at the collector, waiting for it."""
    def found() -> Any:
        rows = [r for r in stored_events(server) if r.rule == rule]
        return rows[0] if rows else None

    return wait_until(found, timeout, interval=0.2, what=f"a {rule} event at the collector")


def type_trigger(supervised: SupervisorRun, server: Any, x11: X11) -> Any:
    """Type a suicide trigger in a new window of the pupil's session; its row at the collector."""
    offset = len(supervised.agent_log())
    win = x11.open_window("Notes - supervised pupil")
    supervised.wait_focus(win.wid, offset)
    x11.type("i want to kill myself")
    x11.key("Return")
    return wait_until(lambda: [r for r in stored_events(server) if r.category == "suicide"],
                      30, interval=0.2, what="the typed trigger at the collector")[0]  # type: ignore[index]


@pytest.fixture
def supervised(x11: X11, collector_server: Any, pupil: Pupil,  # noqa: F811
               supervisor_base: Path) -> Iterator[SupervisorRun]:  # noqa: F811
    # The code the supervisor watches: a copy of part of the agent, so that a test may change
    # it (the real default is the installed agent, core and vigil packages).
    code = supervisor_base / "code"
    code.mkdir()
    (code / "sensors").mkdir()
    (code / "sensors" / "keyboard.py").write_bytes((REPO / "agent/sensors/keyboard.py").read_bytes())
    run = SupervisorRun(x11, supervisor_base, pupil, env_extra={
        "VIGIL_AGENT_CODE_PATHS": str(code), "VIGIL_AGENT_CODE_CHECK_S": "0.5"})
    run.enrol(collector_server)
    run.start()
    try:
        run.wait_agent()
        offset = 0
        if "notice window opened" in run.agent_log():
            # The first start of a session shows the notice; it takes the focus once.
            from agent.notice import NOTICE_TITLE

            wid = wait_until(lambda: x11.find_window(NOTICE_TITLE), 60, interval=0.1,
                             what="the notice window")
            run.wait_focus(int(wid), offset)  # type: ignore[call-overload]
        yield run
    finally:
        run.stop()
        print(f"--- supervisor log ---\n{run.log()[-4000:]}\n"
              f"--- session agent log ---\n{run.agent_log()[-4000:]}")


def test_files_are_roots_and_the_user_cannot_write_them(supervised: SupervisorRun) -> None:
    user = supervised.user
    trust = supervised.etc / "trust.json"
    policy = supervised.state / "policy.json"
    secret = supervised.etc / "enrolment.json"
    for path in (trust, policy, secret, supervised.etc, supervised.state):
        assert path.stat().st_uid == 0, path
    assert stat.S_IMODE(trust.stat().st_mode) == 0o644
    assert stat.S_IMODE(policy.stat().st_mode) == 0o644
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(supervised.socket.parent.stat().st_mode) == 0o755
    before = {p: p.read_bytes() for p in (trust, policy)}
    for path in (trust, policy):
        assert user.sh(f"cat {path} >/dev/null").returncode == 0, f"the user cannot read {path}"
        done = user.sh(f"echo x >> {path}")
        assert done.returncode != 0 and "Permission denied" in done.stderr, path
        assert user.sh(f"rm -f {path}").returncode != 0 and path.exists(), path
        assert user.sh(f"mv {path} {path}.old").returncode != 0, path
    assert before == {p: p.read_bytes() for p in (trust, policy)}
    # The device secret: root's alone.
    done = user.sh(f"cat {secret}")
    assert done.returncode != 0 and "Permission denied" in done.stderr
    # Nor can the user stand in for the supervisor: the socket's directory is root's.
    assert user.sh(f"rm -f {supervised.socket}").returncode != 0 and supervised.socket.exists()
    # The agent the supervisor started runs as the user, under the policy from the supervisor.
    (pid,) = supervised.agent_pids()
    assert Path(f"/proc/{pid}").stat().st_uid == user.uid
    assert "supervised over" in supervised.agent_log()


def test_the_heartbeat_names_the_signed_policy_it_runs(
        supervised: SupervisorRun, collector_server: Any) -> None:
    """Health the technician can trust: serial and digest of the policy in force, as the
    collector's ETag for it, and the signed-in session (issue 15)."""
    from collector.policy_store import latest
    from collector.store.models import Device

    db = collector_server.database()
    try:
        with db.session() as session:
            published = latest(session)
            assert published is not None

        def device() -> Device | None:
            from sqlmodel import select

            with db.session() as session:  # the supervised desktop is the only device
                return session.exec(select(Device)).one_or_none()

        # The first heartbeats may go before the session agent is up (nobody signed in yet).
        row: Any = wait_until(lambda: (d := device()) is not None and d.user_signed_in
                         and d.policy_digest != "" and d, 30,
                         what="a heartbeat from the signed-in session with the policy digest")
        assert (row.policy_serial, row.policy_digest) == (published.serial, published.etag)
    finally:
        db.close()


def test_killing_the_agent_is_reported_and_it_is_back_within_10_s(
        supervised: SupervisorRun, collector_server: Any) -> None:
    user = supervised.user
    (old,) = supervised.agent_pids()
    offset = len(supervised.agent_log())
    before = datetime.now(UTC)
    done = user.sh(f"kill -9 {old}")
    assert done.returncode == 0, done.stderr
    killed_at = time.monotonic()
    supervised.wait_agent(offset, timeout=10)
    back_after = time.monotonic() - killed_at
    (new,) = supervised.agent_pids()
    assert new != old and back_after < 10, back_after

    row = wait_rule(collector_server, "tamper.agent_killed")
    assert (row.category, row.severity, row.source) == ("tamper", 4, "supervisor")
    opened = open_event(collector_server, row)
    assert opened.header["user"] == user.name
    when = datetime.fromisoformat(opened.header["time"])
    assert before - timedelta(seconds=1) <= when <= datetime.now(UTC)
    assert opened.header["detail"]["signal"] == "SIGKILL"
    assert opened.header["detail"]["pid"] == old
    assert opened.body == b""  # no screenshot


def test_an_edited_policy_is_put_back_reported_and_the_signed_one_still_fires(
        supervised: SupervisorRun, collector_server: Any, x11: X11) -> None:
    policy = supervised.state / "policy.json"
    signed = policy.read_bytes()
    # Someone with write access (a local administrator, or a pupil who got it) puts a policy
    # of their own there: no rules, under a new ETag.
    doc = json.loads(signed)
    policy.write_text(json.dumps({"signed": json.dumps({"policy": "no rules"}), "etag": "mine"}))
    assert doc["etag"] != "mine"
    row = wait_rule(collector_server, "tamper.policy_edited")
    assert (row.category, row.severity, row.source) == ("tamper", 4, "supervisor")
    opened = open_event(collector_server, row)
    assert opened.header["detail"]["file"] == str(policy)
    assert opened.header["user"] == supervised.user.name
    wait_until(lambda: policy.read_bytes() == signed, 10, what="the signed policy put back")
    assert "tamper.policy_edited" in supervised.log()

    # The agent keeps the signed policy: a rule from it still fires when typed.
    typed = type_trigger(supervised, collector_server, x11)
    assert typed.source == "typed"
    assert open_event(collector_server, typed).header["user"] == supervised.user.name
    assert os.path.exists(policy)


def test_changed_agent_code_is_reported(supervised: SupervisorRun, collector_server: Any) -> None:
    """Issue 15: the agent's code changed on disk while it runs (a keyboard hook that drops
    keys) is a tamper report naming the file."""
    hook = supervised.base / "code" / "sensors" / "keyboard.py"
    hook.write_text(hook.read_text() + "\nDROP_EVERY_KEY = True\n")
    row = wait_rule(collector_server, "tamper.agent_changed")
    assert (row.category, row.severity, row.source) == ("tamper", 4, "supervisor")
    opened = open_event(collector_server, row)
    assert opened.header["detail"]["changed"] == [str(hook)]
    assert opened.header["detail"]["files"] == 1
    assert opened.header["user"] == supervised.user.name


def test_a_supervised_pupils_event_carries_their_year_and_form_from_the_cohort_map(
        supervised: SupervisorRun, collector_server: Any, x11: X11) -> None:
    """Issue 18: the supervisor fetches the school's cohort map (kept root's alone beside the
    policy) and hands it to the session agent over its socket; the pupil's typed event arrives
    tagged with their year and form, and the name stays sealed."""
    from collector.store.models import RosterImport, RosterPupil, utcnow

    def imported(s: Any) -> None:  # as an applied import writes it (the map follows imports)
        s.add(RosterPupil(username=supervised.user.name, given_name="Sam", family_name="Pupil",
                          year="7", form="7B", flags=["SEN"]))
        s.add(RosterImport(shape="sims", base_digest="-", created_by="test", applied_at=utcnow()))

    db = collector_server.database()
    try:
        db.write(imported)
    finally:
        db.close()
    cohorts = supervised.state / "cohorts.json"
    wait_until(lambda: cohorts.exists() and "7B" in cohorts.read_text(), 30,
               what="the supervisor's cohort map")
    assert stat.S_IMODE(cohorts.stat().st_mode) == 0o600
    assert "Sam" not in cohorts.read_text() and "SEN" not in cohorts.read_text()
    wait_until(lambda: "cohort map: 1 pupils" in supervised.agent_log(), 30,
               what="the session agent's cohort map")

    typed = type_trigger(supervised, collector_server, x11)
    assert (typed.year, typed.form) == ("7", "7B")
    from collector.relabel import row_meta
    from core.envelope import check_meta

    opened = open_event(collector_server, typed)
    check_meta(opened.meta, row_meta(typed))  # the row's tag is the sealed one, as on opening
    assert opened.header["user"] == supervised.user.name
    assert (opened.meta.year, opened.meta.form) == ("7", "7B")
