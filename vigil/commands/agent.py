"""``vigil agent enrol|run|status|selftest|supervise``: the desktop agent.

``enrol`` takes the line `vigil collector enrol-token` prints: it exchanges the token for a
device credential, pins the keyholder set (``--trust``) and the collector's certificate (``--ca``
or ``--ca-fingerprint``), and stores them in the agent's config directory, readable by the agent
only (``--system``: the supervisor's system paths, the secret root's alone). ``run`` watches
until the session ends. ``status`` prints what the agent knows; ``selftest`` checks this desktop
(agent/selftest.py). ``supervise`` is the root
supervisor (agent/supervisor): it runs ``run`` in every graphical session as its user (on Windows
``supervise --service`` is the LocalSystem service, agent/supervisor/windows.py).
``notice-window`` and ``tray`` are the two helper processes ``run`` starts (agent/children.py);
they are not listed in the help.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

__all__ = ["register"]


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from agent.settings import Settings

    return Settings.from_env(config_dir=getattr(args, "config_dir", None),
                             spool_dir=getattr(args, "spool_dir", None))


def _enrol(args: argparse.Namespace) -> int:
    from agent.config import ConfigDir
    from agent.errors import EnrolmentFailed
    from agent.policy_state import PolicyState
    from agent.uplink import Uplink, enrol
    from core.errors import VigilError
    from core.policy import Trust

    settings = _settings(args)
    if args.system:
        from agent.supervisor.store import SystemConfig

        config = SystemConfig(settings.system_config_dir, settings.state_dir)
    else:
        config = ConfigDir(settings.config_dir)
    config.ensure()
    try:
        Trust.pinned(args.trust)
    except VigilError as exc:
        raise EnrolmentFailed(f"--trust: {exc}") from exc
    ca_file = None
    if args.ca:
        try:
            pem = Path(args.ca).read_bytes()
        except OSError as exc:
            raise EnrolmentFailed(f"cannot read --ca {args.ca}: {exc.strerror}") from exc
        ca_file = str(config.save_ca(pem))  # keep our own copy: the original may move
    fingerprints = tuple(args.ca_fingerprint or ())
    enrolment = enrol(args.collector, args.token, args.trust, ca_file, fingerprints,
                      settings.http_timeout_s)
    config.save_enrolment(enrolment)
    config.save_trust(Trust.pinned(args.trust).to_json())
    serial = 0
    try:
        policy = PolicyState(config)
        uplink = Uplink(enrolment, settings.http_timeout_s)
        try:
            fetched = uplink.fetch_policy(None)
        finally:
            uplink.close()
        if fetched is not None and policy.offer(*fetched) is not None:
            serial = policy.serial
    except VigilError as exc:
        print(f"vigil: enrolled, but the policy is not here yet: {exc}", file=sys.stderr)
    print(f"enrolled as device {enrolment.device_id}; policy serial {serial or 'pending'}; "
          f"config in {config.path}")
    return 0


def _logging(settings, name: str) -> bool:  # type: ignore[no-untyped-def]
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        print(f"vigil: unknown log level {settings.log_level!r} (VIGIL_AGENT_LOG_LEVEL): use "
              "debug, info, warning or error", file=sys.stderr)
        return False
    # Debug is for the agent's own lines only: libraries' debug output (HTTP, imaging) stays out.
    logging.basicConfig(level=max(level, logging.INFO), stream=sys.stderr,
                        format=f"%(asctime)s {name} %(levelname)s %(message)s")
    logging.getLogger("agent").setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return True


def _adopt_machine_enrolment(machine: Path, user: Path) -> None:
    """Copy the machine's enrolment (the MSI writes it as SYSTEM; users may read, not write it)
    into this user's config directory when it is new or changed, dropping the cached policy, as
    vigil-agent-session.ps1 does: the agent writes policy and trust updates where it runs."""
    from agent.config import ConfigDir, write_private

    try:
        new = (machine / "enrolment.json").read_bytes()
    except FileNotFoundError:
        return  # not enrolled by the installer: the user's own enrolment decides
    config = ConfigDir(user)
    if config.file("enrolment.json").exists() \
            and config.file("enrolment.json").read_bytes() == new:
        return
    config.ensure()
    for name in ("trust.json", "collector-ca.pem"):
        if (machine / name).exists():
            write_private(config.file(name), (machine / name).read_bytes())
    config.file("policy.json").unlink(missing_ok=True)
    write_private(config.file("enrolment.json"), new)


def _service_installed() -> bool:
    from agent.supervisor.winapi import service_installed
    from agent.supervisor.windows import SERVICE_NAME

    return service_installed(SERVICE_NAME)


def _run(args: argparse.Namespace) -> int:
    from agent.memory import skip_httpx_cli

    skip_httpx_cli()  # before agent.runner imports httpx
    from agent.runner import run_agent

    settings = _settings(args)
    if not _logging(settings, "vigil-agent"):
        return 2
    if args.machine_enrolment:
        if sys.platform == "win32" and not settings.supervised and _service_installed():
            # The MSI's Run entry is the fallback for a machine without the supervisor service:
            # where the service is installed it starts the agent in every session itself.
            logging.getLogger("agent").info(
                "the Vigil supervisor service is installed: it runs the agent in this session")
            return 0
        _adopt_machine_enrolment(args.machine_enrolment, settings.config_dir)
    return run_agent(settings)


def _selftest(args: argparse.Namespace) -> int:
    from agent.selftest import run_selftest

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)  # the checklist is the output
    return run_selftest(_settings(args))


def _supervise(args: argparse.Namespace) -> int:
    from agent.settings import Settings
    from agent.supervisor.service import run_supervisor
    from agent.supervisor.sessions import parse_explicit

    if args.service:
        if sys.platform != "win32":
            print("vigil: --service is for Windows (on Linux systemd runs `vigil agent supervise`)",
                  file=sys.stderr)
            return 2
        from agent.supervisor.windows import run_service

        return run_service()
    displays, users = args.display or [], args.user or []
    if len(displays) != len(users):
        print("vigil: give --display and --user in pairs (--display :N --user NAME)",
              file=sys.stderr)
        return 2
    explicit = ",".join(f"{d}={u}" for d, u in zip(displays, users, strict=True))
    settings = Settings.from_env(sessions=explicit or None)
    try:
        parse_explicit(settings.sessions)
    except ValueError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    if not _logging(settings, "vigil-supervisor"):
        return 2
    return run_supervisor(settings)


def _status(args: argparse.Namespace) -> int:
    from agent.config import ConfigDir
    from agent.spool import Spool

    settings = _settings(args)
    enrolment = ConfigDir(settings.config_dir).load_enrolment()
    spool = Spool(settings.spool_dir)
    running: dict = {}
    try:
        running = json.loads((settings.spool_dir / "status.json").read_text())
    except (OSError, ValueError):
        pass
    info = {
        "collector": enrolment.collector, "device_id": enrolment.device_id,
        "keyset_fingerprint": enrolment.keyset_fingerprint,
        "spool_depth": spool.depth, "dropped": spool.dropped, "quarantined": spool.quarantined,
        "policy_serial": running.get("policy_serial"),
        "last_heartbeat": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(running["last_heartbeat"]))
        if running.get("last_heartbeat") else None,
        "listener_restarts": running.get("listener_restarts"),
        "needs_enrolment": running.get("needs_enrolment", False),
        "last_error": running.get("last_error") or None,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value if value is not None else '-'}")
    return 0


def _notice_window(args: argparse.Namespace) -> int:
    from agent.notice import notice_window

    try:
        notice_window(args.text, args.timeout)
    except Exception as exc:  # noqa: BLE001 - tkinter's TclError: no display, no Tk
        print(f"vigil: cannot show the notice window: {exc}", file=sys.stderr)
        return 1
    return 0


def _tray(args: argparse.Namespace) -> int:
    from agent.tray import run_tray

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s vigil-agent %(levelname)s %(message)s")
    return run_tray(args.text, args.wait)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("agent", help="the desktop agent: enrol, run, status")
    sub = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    def dirs(p: argparse.ArgumentParser, spool: bool) -> None:
        p.add_argument("--config-dir", type=Path, help="config directory (default: platformdirs)")
        if spool:
            p.add_argument("--spool-dir", type=Path, help="spool directory (default: platformdirs)")

    p = sub.add_parser("enrol", help="enrol this device with a collector")
    p.add_argument("--collector", required=True, metavar="URL", help="https://host:port")
    p.add_argument("--token", required=True, help="the enrolment token")
    p.add_argument("--trust", required=True, metavar="FINGERPRINT",
                   help="the keyholder set's fingerprint (vks1:...)")
    pin = p.add_mutually_exclusive_group(required=True)
    pin.add_argument("--ca", metavar="CERT", help="pin the collector by this CA certificate (PEM)")
    pin.add_argument("--ca-fingerprint", metavar="SHA256", action="append",
                     help="pin the collector's certificate by SHA-256 (repeat for rotation)")
    p.add_argument("--system", action="store_true",
                   help="enrol for the supervisor: /etc/vigil/agent and /var/lib/vigil-agent "
                        "(VIGIL_AGENT_SYSTEM_CONFIG_DIR, VIGIL_AGENT_STATE_DIR), as root")
    dirs(p, spool=False)
    p.set_defaults(func=_enrol)

    p = sub.add_parser("run", help="watch this desktop session until it ends")
    dirs(p, spool=True)
    p.add_argument("--machine-enrolment", type=Path, metavar="DIR",
                   help="first copy the machine's enrolment from DIR when new or changed "
                        "(the MSI's Run entry: %%ProgramData%%\\Vigil\\enrolment)")
    p.set_defaults(func=_run)

    p = sub.add_parser("selftest", help="check enrolment, collector, policy and sensors "
                                        "(one line each; exit 1 if any failed)")
    dirs(p, spool=False)
    p.set_defaults(func=_selftest)

    p = sub.add_parser("supervise", help="as root: keep an agent in every graphical session")
    p.add_argument("--display", action="append", metavar=":N",
                   help="a session on this X display (with --user; repeat for more); default: "
                        "logind's sessions, else the X displays in use")
    p.add_argument("--user", action="append", metavar="NAME", help="the user of that --display")
    p.add_argument("--service", action="store_true",
                   help="Windows: run as the VigilSupervisor service (the service control "
                        "manager starts it so; without it, supervise in this console)")
    p.set_defaults(func=_supervise)

    p = sub.add_parser("status", help="show the enrolment and the spool")
    p.add_argument("--json", action="store_true", help="print JSON")
    dirs(p, spool=True)
    p.set_defaults(func=_status)

    # The helper processes of `run` (agent/children.py): not for direct use, so not listed.
    p = sub.add_parser("notice-window")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("text")
    p.set_defaults(func=_notice_window)

    p = sub.add_parser("tray")
    p.add_argument("--wait", type=float, default=120.0)
    p.add_argument("text")
    p.set_defaults(func=_tray)
