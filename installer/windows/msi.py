"""The Windows agent's MSI, built on Linux with wixl (Debian's msitools): ``make windows``.

The bundle is the embedded runtime (build/windows/runtime: CPython 3.13.2 win_amd64 and the locked
wheels) plus Vigil's agent-side packages (core, agent, vigil, wordlists) in its site-packages;
the MSI installs it per machine into ``%ProgramFiles%\\Vigil\\python``.

Deployed silently by Group Policy or Intune::

    msiexec /i vigil-agent-0.1.0.msi /qn COLLECTOR=https://vigil.school.lan:8443 TOKEN=T ^
            TRUST=<keyset fingerprint> CAFINGERPRINT=<certificate fingerprint>

With COLLECTOR and TOKEN set, a deferred custom action (as SYSTEM) runs ``vigil agent enrol
--system`` into ``%ProgramData%\\Vigil\\enrolment`` (the device credential readable by SYSTEM and
Administrators only); a failed enrolment fails the install (exit 1603) and rolls it back, so a
wrong token never leaves a silent, unenrolled agent. Without them the files are installed alone
(enrol later with ``vigil agent enrol --system``; the service waits for it).

The supervisor service ``VigilSupervisor`` (agent/supervisor/windows.py: LocalSystem, automatic
start, ``python.exe -m vigil agent supervise --service``) is installed with python.exe's component
(ServiceInstall) and started after the enrolment (ServiceControl, StartServices); it is stopped
before an upgrade or removal replaces files and deleted on removal. Between the stop and the
removal of files, the ReleaseFiles custom action (agent/supervisor/release.py) waits for every
process running from the install directory to have ended, and ends any left: a stopped service
still maps its DLLs for a moment, and a DLL in use would be left behind for a reboot. It starts the agent in every
signed-in session as that user and restarts it when it dies.

The fallback for a machine without the service: at every user's log-on the agent starts from the
per-machine Run entry ``HKLM\\Software\\Microsoft\\
Windows\\CurrentVersion\\Run`` "Vigil agent" (RUN_COMMAND), a row of the MSI's Registry table, so
``msiexec /x`` removes it with the product. Explorer runs it in the user's session, as the user, as
the scheduled task of install.ps1 does, without PowerShell; ``pythonw.exe`` opens no console. It
copies the machine's enrolment into the user's profile first (``--machine-enrolment``). Where the
service is installed (always, from this MSI) the command ends at once and leaves the session to
the service.

Upgrades: the UpgradeCode below never changes and MajorUpgrade removes the older version when a
newer one is installed (a downgrade is refused). Component GUIDs are derived from each file's path,
so a file keeps its component across versions. Removal (``msiexec /x``) deletes every installed
file; the enrolment in ProgramData stays (install.ps1 -Uninstall -Purge removes it).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from xml.sax.saxutils import quoteattr

REPO = Path(__file__).resolve().parents[2]
# Never change: Windows Installer finds earlier versions of the agent by this code.
UPGRADE_CODE = "6F1D3B52-8C1E-4F0A-9B7D-3A5E2C9F4D10"
GUID_NAMESPACE = uuid.UUID(UPGRADE_CODE)
PACKAGES = ("core", "agent", "vigil", "wordlists")  # what the agent imports; no collector
SECURE = "COLLECTOR;TOKEN;TRUST;CAFINGERPRINT"  # the properties a silent install is given
# Started at every user's log-on, in their session, as them (see the module's docstring).
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "Vigil agent"
MACHINE_ENROLMENT = r"[CommonAppDataFolder]Vigil\enrolment"
RUN_COMMAND = (r'"[INSTALLDIR]python\pythonw.exe" -m vigil agent run '
               f'--machine-enrolment "{MACHINE_ENROLMENT}"')
RUN_COMPONENT_GUID = str(uuid.uuid5(GUID_NAMESPACE, "registry/Run/Vigil agent")).upper()
# The supervisor service (agent/supervisor/windows.py): installed with python.exe's component,
# as LocalSystem, started automatically and at the end of the install, stopped before an
# upgrade or removal replaces its files, removed with the product.
SERVICE_NAME = "VigilSupervisor"
SERVICE_EXE = "python/python.exe"
# Its bytecode cache goes to ProgramData: written into Program Files (SYSTEM may), it would be
# left behind by msiexec /x, which removes only the files it installed.
SERVICE_ARGS = (r'-X "pycache_prefix=[CommonAppDataFolder]Vigil\state\pycache" '
                "-m vigil agent supervise --service")
SERVICE_XML = (
    f'<ServiceInstall Id="SupervisorService" Name="{SERVICE_NAME}" '
    'DisplayName="Vigil supervisor" Description="Keeps the Vigil safeguarding agent running in '
    'every signed-in session and reports when it is stopped." Type="ownProcess" Start="auto" '
    f'ErrorControl="normal" Account="LocalSystem" Arguments={quoteattr(SERVICE_ARGS)} Vital="yes"/>'
    f'<ServiceControl Id="SupervisorControl" Name="{SERVICE_NAME}" Start="install" Stop="both" '
    'Remove="uninstall" Wait="yes"/>')
# Between StopServices (1900) and RemoveFiles (3500) on removal, and so on an upgrade's removal
# of the older version: wait for the service and its session agents to have ended (a stopped
# service's process still maps its DLLs for a moment), see agent/supervisor/release.py. -B: no
# bytecode written beside the files being removed.
RELEASE_ARGS = "-B -m agent.supervisor.release"
SKIP = re.compile(r"(^|/)(__pycache__|\.vigil-stamp|.*\.pyc)$")


def project_version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    assert match is not None
    return match.group(1)


def msi_version(version: str) -> str:
    """Windows Installer wants major.minor.build, each a number (0.1.0rc1 -> 0.1.0)."""
    parts = [re.match(r"\d+", p) for p in version.split(".")[:3]]
    return ".".join(m.group(0) if m else "0" for m in parts)


def make_bundle(runtime: Path, bundle: Path) -> Path:
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(runtime, bundle / "python", ignore=shutil.ignore_patterns(".vigil-stamp"))
    site = bundle / "python" / "Lib" / "site-packages"
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, site / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_demo"))
    return bundle


def _id(kind: str, rel: str) -> str:
    return kind + hashlib.sha256(rel.encode()).hexdigest()[:32]


def make_wxs(bundle: Path, version: str) -> str:
    components: list[str] = []
    root = bundle.parent  # wixl resolves Source paths against its working directory

    def directory(path: Path, rel: str, indent: str) -> list[str]:
        out = []
        for child in sorted(path.iterdir()):
            crel = f"{rel}/{child.name}" if rel else child.name
            if SKIP.search(crel):
                continue
            if child.is_dir():
                out.append(f'{indent}<Directory Id="{_id("d", crel)}" Name={quoteattr(child.name)}>')
                out += directory(child, crel, indent + "  ")
                out.append(f"{indent}</Directory>")
            else:
                cid = _id("c", crel)
                guid = str(uuid.uuid5(GUID_NAMESPACE, crel)).upper()
                components.append(cid)
                out.append(f'{indent}<Component Id="{cid}" Guid="{guid}" Win64="yes">')
                out.append(f'{indent}  <File Id="{_id("f", crel)}" Name={quoteattr(child.name)} '
                           f'Source={quoteattr(str(child.relative_to(root)))} KeyPath="yes"/>')
                if crel == SERVICE_EXE:
                    out.append(indent + "  " + SERVICE_XML)
                out.append(f"{indent}</Component>")
        return out

    tree = "\n".join(directory(bundle, "", "        "))
    refs = "\n".join(f'      <ComponentRef Id="{c}"/>' for c in components)
    # --system: into %ProgramData%\\Vigil\\enrolment with the service's access lists (the device
    # credential not readable by Users), before StartServices starts the service
    enrol = ('-m vigil agent enrol --collector [COLLECTOR] '
             '--token=[TOKEN] --trust [TRUST] --ca-fingerprint [CAFINGERPRINT] --system')
    run_key = (f'<Component Id="RunAtLogOn" Guid="{RUN_COMPONENT_GUID}" Win64="yes">\n'
               f'          <RegistryValue Root="HKLM" Key={quoteattr(RUN_KEY)} '
               f'Name={quoteattr(RUN_VALUE)} Type="string" Value={quoteattr(RUN_COMMAND)} '
               'KeyPath="yes"/>\n'
               '        </Component>')
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="Vigil agent" Language="1033" Version="{version}" Manufacturer="Vigil"
           UpgradeCode="{UPGRADE_CODE}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine"
             Description="Vigil safeguarding agent {version}"
             Comments="Embedded CPython 3.13.2 (win_amd64) with the Vigil agent"/>
    <Media Id="1" Cabinet="vigil.cab" EmbedCab="yes"/>
    <MajorUpgrade DowngradeErrorMessage="A newer Vigil agent is already installed."/>
    <!-- wixl ignores Hidden= (and Secure=, see SECURE below): the token stays out of the
         Windows Installer log. -->
    <Property Id="MsiHiddenProperties" Value="TOKEN"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="Vigil">
{tree}
        {run_key}
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Agent" Title="Vigil agent" Level="1">
{refs}
      <ComponentRef Id="RunAtLogOn"/>
    </Feature>
    <CustomAction Id="EnrolMachine" FileKey="{_id("f", "python/python.exe")}" Execute="deferred"
                  Impersonate="no"
                  Return="check" ExeCommand={quoteattr(enrol)}/>
    <CustomAction Id="ReleaseFiles" FileKey="{_id("f", "python/python.exe")}" Execute="deferred"
                  Impersonate="no" Return="ignore" ExeCommand={quoteattr(RELEASE_ARGS)}/>
    <InstallExecuteSequence>
      <Custom Action="ReleaseFiles" Sequence="1950">REMOVE~="ALL"</Custom>
      <Custom Action="EnrolMachine" Sequence="5700">COLLECTOR AND TOKEN AND NOT REMOVE</Custom>
    </InstallExecuteSequence>
  </Product>
</Wix>
"""


def build_msi(runtime: Path, bundle: Path, out_dir: Path, version: str | None = None) -> Path:
    version = msi_version(version or project_version())
    make_bundle(runtime, bundle)
    wxs = bundle.with_name("vigil-agent.wxs")
    wxs.write_text(make_wxs(bundle, version))
    out_dir.mkdir(parents=True, exist_ok=True)
    msi = out_dir / f"vigil-agent-{version}.msi"
    subprocess.run(["wixl", "-a", "x64", "-o", str(msi.resolve()), wxs.name], cwd=wxs.parent,
                   check=True, timeout=900)
    # wixl ignores Secure="yes" and writes SecureCustomProperties itself for MajorUpgrade (a
    # second row would collide): add the command-line properties to its row, so their values
    # reach the elevated part of a managed install.
    query = ("UPDATE `Property` SET `Value` = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;"
             f"{SECURE}' WHERE `Property` = 'SecureCustomProperties'")
    subprocess.run(["msibuild", str(msi), "-q", query], check=True, timeout=120)
    return msi
