# Shared by install.sh and uninstall.sh: option parsing for the installation root, the paths
# every component uses, and helpers that change a file only when its content differs (so that
# running an installer twice changes nothing).
# shellcheck shell=bash

ROOT="${VIGIL_ROOT:-}"
USE_SYSTEMCTL=1
SERVICE_USER=vigil

die() { echo "vigil-installer: $*" >&2; exit 1; }
say() { echo "vigil-installer: $*"; }

# Sets ROOT and USE_SYSTEMCTL from --root/--no-systemctl; the caller handles the other options.
common_option() {
    case "$1" in
        --root) [ -n "${2:-}" ] || die "--root needs a directory"; ROOT="$2"; return 2 ;;
        --no-systemctl) USE_SYSTEMCTL=0; return 1 ;;
    esac
    return 0
}

set_paths() {
    ROOT="${ROOT%/}"
    OPT="$ROOT/opt/vigil"
    VENV="$OPT/venv"
    COMPONENTS="$OPT/components"
    ETC="$ROOT/etc/vigil"
    DATA="$ROOT/var/lib/vigil"
    AGENT_CONF="$ETC/agent"
    AGENT_STATE="$ROOT/var/lib/vigil-agent"
    SYSTEM_UNITS="$ROOT/etc/systemd/system"
    USER_UNITS="$ROOT/etc/systemd/user"
    AUTOSTART="$ROOT/etc/xdg/autostart"
    BIN_LINK="$ROOT/usr/local/bin/vigil"
}

# systemctl for live actions (start, stop, daemon-reload): only on a booted systemd host, only
# for the real root, and never with --no-systemctl.
live_systemctl() {
    [ "$USE_SYSTEMCTL" = 1 ] && [ -z "$ROOT" ] && [ -d /run/systemd/system ] || return 0
    systemctl "$@"
}

# systemctl for enable/disable, which only manage symlinks and so also work inside --root.
offline_systemctl() {
    if [ -n "$ROOT" ]; then
        systemctl --root="$ROOT" "$@" >/dev/null 2>&1
    elif command -v systemctl >/dev/null; then
        systemctl "$@" >/dev/null 2>&1 || true
    fi
}

# put_file SRC DEST MODE: copies only when the content differs; sets CHANGED=1 when it did.
put_file() {
    local src="$1" dest="$2" mode="$3"
    mkdir -p "$(dirname "$dest")"
    if ! cmp -s "$src" "$dest" 2>/dev/null; then
        install -m "$mode" "$src" "$dest"
        CHANGED=1
    fi
    chmod "$mode" "$dest"
}

# put_text DEST MODE <<< text: like put_file for generated content.
put_text() {
    local dest="$1" mode="$2" tmp
    tmp="$(mktemp)"
    cat > "$tmp"
    put_file "$tmp" "$dest" "$mode"
    rm -f "$tmp"
}

installed_components() { [ -f "$COMPONENTS" ] && cat "$COMPONENTS" || true; }

# Removes DIR and the parents it leaves empty, up to (not including) ROOT.
remove_empty_parents() {
    local dir="$1"
    while [ -n "$dir" ] && [ "$dir" != "$ROOT" ] && [ "$dir" != "/" ]; do
        # On a real system, leave shared directories (/usr/local/bin, /etc/xdg/autostart) alone.
        case "$dir" in *vigil*) ;; *) [ -z "$ROOT" ] && return 0 ;; esac
        rmdir "$dir" 2>/dev/null || return 0
        dir="$(dirname "$dir")"
    done
}

# What installs before the supervisor put in every user's session (a user unit, an XDG autostart
# entry and its script); the supervisor starts the agent now, so they go.
remove_session_autostart() {
    if [ -f "$USER_UNITS/vigil-agent.service" ]; then
        offline_systemctl --global disable vigil-agent.service
    fi
    rm -f "$USER_UNITS/vigil-agent.service" "$AUTOSTART/vigil-agent.desktop" \
        "$OPT/bin/vigil-agent-session"
    remove_empty_parents "$USER_UNITS"
    remove_empty_parents "$AUTOSTART"
    remove_empty_parents "$OPT/bin"
}

user_exists() { grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd" 2>/dev/null; }
group_exists() { grep -q "^$SERVICE_USER:" "$ROOT/etc/group" 2>/dev/null; }
prefix_args() { [ -n "$ROOT" ] && echo "--prefix $ROOT" || true; }
