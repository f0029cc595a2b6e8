#!/usr/bin/env bash
# Installs the Debian packages Vigil's tests and demo need, only those that are missing.
# Runs as root or through sudo; idempotent.
set -euo pipefail
want=(xvfb xdotool openbox x11-utils xclip trayer chromium python3-venv python3-tk
      libtesseract5 tesseract-ocr tesseract-ocr-eng tesseract-ocr-cym tesseract-ocr-pol  # OCR: agent/screen
      haproxy)  # tests/integration/test_two_instances.py: the load balancer in front of two collectors
[ "${1:-}" = "--with-postgres" ] && want+=(postgresql)
[ "${1:-}" = "--packages" ] && { shift; want=("$@"); }  # another list: scripts/wine/system-deps.sh
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
