#!/usr/bin/env bash
# Builds an offline installation kit as a Debian package: vigil_<version>_amd64.deb holds the
# Linux installers, the vigil wheel and every locked dependency as wheels, and two commands:
#
#   sudo apt install ./vigil_0.1.0_amd64.deb
#   sudo vigil-install collector ...          # or: vigil-install agent --collector ... (as install.sh)
#   sudo vigil-uninstall agent|collector|all [--purge]
#
# Installing the package changes nothing else on the machine: vigil-install does the work, so the
# same options and the same checks apply as with install.sh. Remove with vigil-uninstall first,
# then `apt remove vigil`.
#
#   build-deb.sh [--wheelhouse DIR] [--out DIR]     (prints the path of the .deb)
# Without --wheelhouse it builds one (needs the package index or pip's cache).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WHEELHOUSE="" OUT="$PWD"
while [ $# -gt 0 ]; do
    case "$1" in
        --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "build-deb: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is missing (Debian package dpkg)" >&2; exit 1; }
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -z "$WHEELHOUSE" ]; then
    WHEELHOUSE="$work/wheels"
    src="$work/src"
    mkdir -p "$src"
    tar -C "$REPO" --exclude=.venv --exclude=.git --exclude='*.egg-info' --exclude=build \
        --exclude=__pycache__ -cf - . | tar -C "$src" -xf -
    "$PYTHON" -m pip wheel -q --no-deps -w "$WHEELHOUSE" "$src"
    wheel="$(ls "$WHEELHOUSE"/vigil-*.whl)"
    "$PYTHON" -m pip wheel -q -c "$REPO/requirements.lock" -w "$WHEELHOUSE" "$wheel[agent,collector]"
fi
wheel="$(ls "$WHEELHOUSE"/vigil-*.whl | head -1)"
version="$(basename "$wheel" | cut -d- -f2)"

pkg="$work/pkg"
share="$pkg/usr/share/vigil"
mkdir -p "$share/installer" "$share/wheels" "$pkg/usr/sbin" "$pkg/DEBIAN" "$pkg/usr/share/doc/vigil"
cp -a "$HERE/install.sh" "$HERE/uninstall.sh" "$HERE/common.sh" "$HERE/systemd" \
    "$share/installer/"
cp "$WHEELHOUSE"/*.whl "$share/wheels/"
cp "$REPO/requirements.lock" "$share/"
cp "$REPO/docs/admin-guide.md" "$REPO/LICENSE" "$pkg/usr/share/doc/vigil/"
cat > "$pkg/usr/sbin/vigil-install" <<'SH'
#!/bin/sh
# Runs the packaged installer with the packaged wheels, offline. Same options as install.sh.
share="${VIGIL_SHARE:-/usr/share/vigil}"
exec "$share/installer/install.sh" "$@" --from "$(ls "$share"/wheels/vigil-*.whl | head -1)" \
    --wheelhouse "$share/wheels" --lock "$share/requirements.lock"
SH
cat > "$pkg/usr/sbin/vigil-uninstall" <<'SH'
#!/bin/sh
share="${VIGIL_SHARE:-/usr/share/vigil}"
exec "$share/installer/uninstall.sh" "$@"
SH
chmod 755 "$pkg/usr/sbin/vigil-install" "$pkg/usr/sbin/vigil-uninstall"
size="$(du -sk "$pkg/usr" | cut -f1)"
cat > "$pkg/DEBIAN/control" <<CTRL
Package: vigil
Version: $version
Architecture: amd64
Maintainer: Vigil project <vigil@localhost>
Installed-Size: $size
Depends: python3 (>= 3.11), python3-venv
Recommends: xdotool, python3-tk, libtesseract5, tesseract-ocr-eng
Suggests: tesseract-ocr-cym, tesseract-ocr-pol
Section: admin
Priority: optional
Homepage: https://github.com/vigil-safeguarding/vigil
Description: open safeguarding monitor for schools (offline installation kit)
 The installers and every Python wheel Vigil needs, pinned. Run vigil-install collector
 on the server, or vigil-install agent --collector URL --token T --trust FPR on desktops.
 Nothing is installed or started until you do; see /usr/share/doc/vigil/admin-guide.md.
CTRL
mkdir -p "$OUT"
deb="$OUT/vigil_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$deb" >/dev/null
echo "$deb"
