#!/usr/bin/env bash
# Removes what install.sh installed. Keeps the collector's data (/var/lib/vigil, its service
# user) and the agent's enrolment unless told --purge.
#
#   uninstall.sh collector|agent|all [--purge] [--root DIR] [--no-systemctl]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

COMPONENT="${1:-}"
case "$COMPONENT" in
    collector|agent|all) shift ;;
    *) die "say what to remove: collector, agent or all (add --purge to delete data too)" ;;
esac
PURGE=0
while [ $# -gt 0 ]; do
    rc=0; common_option "$@" || rc=$?
    if [ "$rc" -gt 0 ]; then shift "$rc"; continue; fi
    case "$1" in
        --purge) PURGE=1; shift ;;
        *) die "unknown option: $1" ;;
    esac
done
set_paths
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 $COMPONENT ...)"

forget_component() {
    local rest
    rest="$(installed_components | grep -vx "$1" || true)"
    if [ -n "$rest" ]; then echo "$rest" > "$COMPONENTS"; else rm -f "$COMPONENTS"; fi
}

remove_collector() {
    live_systemctl stop vigil-collector.service || true
    [ -f "$SYSTEM_UNITS/vigil-collector.service" ] && offline_systemctl disable vigil-collector.service
    rm -f "$SYSTEM_UNITS/vigil-collector.service" "$ETC/collector.env"
    remove_empty_parents "$SYSTEM_UNITS"
    live_systemctl daemon-reload || true
    if [ "$PURGE" = 1 ]; then
        rm -rf "$DATA"
        remove_empty_parents "$(dirname "$DATA")"
        # shellcheck disable=SC2046
        user_exists && userdel $(prefix_args) "$SERVICE_USER"
        # shellcheck disable=SC2046
        group_exists && groupdel $(prefix_args) "$SERVICE_USER"
    elif [ -d "$DATA" ]; then
        say "kept the collector's data in $DATA and the user $SERVICE_USER (--purge deletes them)"
    fi
    forget_component collector
}

remove_agent() {
    live_systemctl stop vigil-supervisor.service || true  # it stops the session agents too
    [ -f "$SYSTEM_UNITS/vigil-supervisor.service" ] && offline_systemctl disable vigil-supervisor.service
    rm -f "$SYSTEM_UNITS/vigil-supervisor.service"
    remove_empty_parents "$SYSTEM_UNITS"
    remove_session_autostart
    live_systemctl daemon-reload || true
    if [ "$PURGE" = 1 ]; then
        rm -rf "$AGENT_CONF" "$AGENT_STATE"
        remove_empty_parents "$(dirname "$AGENT_STATE")"
    elif [ -d "$AGENT_CONF" ]; then
        say "kept this machine's enrolment in $AGENT_CONF and its policy and spool in $AGENT_STATE (--purge deletes them)"
    fi
    forget_component agent
}

case "$COMPONENT" in
    collector) remove_collector ;;
    agent) remove_agent ;;
    all) remove_agent; remove_collector ;;
esac

# The virtual environment goes with the last component that used it.
if [ -z "$(installed_components)" ]; then
    rm -rf "$VENV"
    [ "$(readlink "$BIN_LINK" 2>/dev/null)" = /opt/vigil/venv/bin/vigil ] && rm -f "$BIN_LINK"
    remove_empty_parents "$(dirname "$BIN_LINK")"
    remove_empty_parents "$OPT"
fi
remove_empty_parents "$ETC"
say "removed the $COMPONENT"
