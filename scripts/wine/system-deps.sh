#!/usr/bin/env bash
# Debian packages for the Wine tests and the MSI build (only those missing, by scripts/system-deps.sh).
#   wine, wine64      Debian 12's Wine 8.0: runs the Windows CPython and the agent's Win32 code paths
#   xvfb openbox xdotool  a display, a window manager (foreground window) and typed keys
#   wixl, msitools    build the MSI from WiX 3 XML on Linux and read its tables
#   osslsigncode      Authenticode-signs and verifies the MSI on Linux (installer/windows/codesign.py)
#   gcc-mingw-w64-x86-64  builds the test-only bcryptprimitives.dll shim (Wine 8.0 lacks it)
set -euo pipefail
want=(wine wine64 xvfb openbox xdotool x11-utils wixl msitools osslsigncode gcc-mingw-w64-x86-64)
[ "${1:-}" = "--msi-only" ] && want=(wixl msitools osslsigncode)
exec "$(dirname "$0")/../system-deps.sh" --packages "${want[@]}"
