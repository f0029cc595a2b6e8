#!/usr/bin/env bash
# Installs Vigil's collector (a systemd service) or agent (a root supervisor that runs the agent
# in every graphical session) into a dedicated virtual environment under /opt/vigil. Running it
# twice changes nothing.
#
#   install.sh collector [--host 0.0.0.0] [--port 8443] [--public-url https://NAME:8443]
#   install.sh agent --collector URL --token T --trust FPR [--ca CERT | --ca-fingerprint SHA256]
#
# Common options:
#   --from PATH        a vigil wheel or source tree (default: the tree this script belongs to)
#   --wheelhouse DIR   install offline from these wheels (pip --no-index --find-links DIR)
#   --lock FILE        version pins (default: requirements.lock next to the source)
#   --python PY        the Python 3.11+ that creates the venv (default: python3)
#   --root DIR         install under DIR instead of / (also VIGIL_ROOT=DIR); for tests and images
#   --no-systemctl     do not start, stop or reload services (units are still enabled)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

# The usage is the comment block at the top of this file.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit "${1:-2}"; }

COMPONENT="${1:-}"
case "$COMPONENT" in
    collector|agent) shift ;;
    -h|--help) usage 0 ;;
    *) echo "vigil-installer: say which part to install: collector or agent" >&2; usage ;;
esac

FROM="" WHEELHOUSE="" LOCK="" PYTHON="python3"
HOST="0.0.0.0" PORT="8443" PUBLIC_URL=""
COLLECTOR_URL="" TOKEN="" TRUST="" CA="" CA_FPR=""
while [ $# -gt 0 ]; do
    rc=0; common_option "$@" || rc=$?
    if [ "$rc" -gt 0 ]; then shift "$rc"; continue; fi
    [ $# -ge 2 ] || { [ "$1" = -h ] || [ "$1" = --help ] && usage 0; die "unknown or incomplete option: $1"; }
    case "$1" in
        --from) FROM="$2" ;;
        --wheelhouse) WHEELHOUSE="$2" ;;
        --lock) LOCK="$2" ;;
        --python) PYTHON="$2" ;;
        --host) HOST="$2" ;;
        --port) PORT="$2" ;;
        --public-url) PUBLIC_URL="$2" ;;
        --collector) COLLECTOR_URL="$2" ;;
        --token) TOKEN="$2" ;;
        --trust) TRUST="$2" ;;
        --ca) CA="$2" ;;
        --ca-fingerprint) CA_FPR="$2" ;;
        *) die "unknown option: $1" ;;
    esac
    shift 2
done
set_paths
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 $COMPONENT ...)"
# Nothing the installer runs may leave bytecode behind: pip compiles what it installs.
export PYTHONDONTWRITEBYTECODE=1

# --- the virtual environment --------------------------------------------------------------
FROM="${FROM:-$(cd "$HERE/../.." && pwd)}"
if [ -z "$LOCK" ]; then
    if [ -d "$FROM" ]; then LOCK="$FROM/requirements.lock"; else LOCK="$HERE/../../requirements.lock"; fi
fi
[ -e "$FROM" ] || die "no such wheel or source tree: $FROM"
[ -f "$LOCK" ] || die "no lock file at $LOCK (pass --lock FILE)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python 3.11 or newer (pass --python)"

source_digest() {
    if [ -d "$FROM" ]; then
        (cd "$FROM" && find pyproject.toml core agent collector dashboard vigil wordlists -type f \
            ! -path '*__pycache__*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    else
        sha256sum < "$FROM"
    fi | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local extras stamp wheel tmp
    extras="$( (installed_components; echo "$COMPONENT") | sort -u | paste -sd, -)"
    stamp="$(printf '%s\n' "$(source_digest)" "$(sha256sum < "$LOCK")" "$extras" \
        "$("$PYTHON" -c 'import sys; print(sys.version)')" | sha256sum | cut -d' ' -f1)"
    if [ -f "$VENV/.vigil-stamp" ] && [ "$(cat "$VENV/.vigil-stamp")" = "$stamp" ]; then
        return 0
    fi
    say "installing vigil[$extras] into $VENV"
    mkdir -p "$OPT"
    chmod 755 "$OPT"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    local pip=("$VENV/bin/python" -m pip -q)
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    if [ -n "$WHEELHOUSE" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"; fi
    tmp="$(mktemp -d)"
    wheel="$FROM"
    if [ -d "$FROM" ]; then
        # Build in a copy: setuptools writes build/ and *.egg-info into the tree it builds.
        tar -C "$FROM" --exclude=.venv --exclude=.git --exclude='*.egg-info' --exclude=build \
            --exclude=__pycache__ -cf - . | tar -C "$tmp" -xf -
        "${pip[@]}" wheel --no-deps -w "$tmp/dist" "$tmp" >/dev/null 2>&1 \
            || die "could not build a wheel from $FROM"
        wheel="$(ls "$tmp"/dist/vigil-*.whl)"
    fi
    "${pip[@]}" install -c "$LOCK" "$wheel[$extras]" || die "pip could not install $wheel"
    # Same version number, new code (an upgrade from source): replace vigil itself.
    "${pip[@]}" install --no-deps --force-reinstall "$wheel" || die "pip could not install $wheel"
    rm -rf "$tmp"
    echo "$stamp" > "$VENV/.vigil-stamp"
    CHANGED=1  # new code: a running collector must restart
    mkdir -p "$(dirname "$BIN_LINK")"
    ln -sfn /opt/vigil/venv/bin/vigil "$BIN_LINK"
}

record_component() {
    (installed_components; echo "$COMPONENT") | sort -u | put_text "$COMPONENTS" 644
}

vigil_cmd() { "$VENV/bin/vigil" "$@"; }

# --- collector ----------------------------------------------------------------------------
install_collector() {
    local uid gid
    if ! user_exists; then
        say "creating the system user $SERVICE_USER"
        # shellcheck disable=SC2046
        useradd $(prefix_args) --system --user-group --home-dir /var/lib/vigil --no-create-home \
            --shell /usr/sbin/nologin --comment "Vigil collector" "$SERVICE_USER"
    fi
    uid="$(awk -F: -v u="$SERVICE_USER" '$1 == u {print $3}' "$ROOT/etc/passwd")"
    gid="$(awk -F: -v u="$SERVICE_USER" '$1 == u {print $4}' "$ROOT/etc/passwd")"

    local shown_host="$HOST"
    case "$HOST" in 0.0.0.0|::|"") shown_host="$(hostname -f 2>/dev/null || hostname)" ;; esac
    PUBLIC_URL="${PUBLIC_URL:-https://$shown_host:$PORT}"
    mkdir -p "$DATA"
    if [ -z "$(ls -A "$DATA")" ]; then
        say "initialising the collector's data directory $DATA"
        vigil_cmd collector init --data "$DATA" --port "$PORT" --public-url "$PUBLIC_URL" \
            || die "could not initialise $DATA"
    fi
    chown -R "$uid:$gid" "$DATA"
    chmod 700 "$DATA"
    # Settings and keys: readable by the service user only.
    find "$DATA" -maxdepth 1 -type f -exec chmod go-rwx {} +

    put_text "$ETC/collector.env" 600 <<CONF
# Read by vigil-collector.service. Other settings live in /var/lib/vigil.
VIGIL_HOST=$HOST
VIGIL_PORT=$PORT
CONF
    chmod 755 "$ETC"
    put_file "$HERE/systemd/vigil-collector.service" "$SYSTEM_UNITS/vigil-collector.service" 644
    record_component
    offline_systemctl enable vigil-collector.service
    live_systemctl daemon-reload
    if [ "$CHANGED" = 1 ]; then live_systemctl restart vigil-collector.service; else live_systemctl start vigil-collector.service; fi

    say "collector installed; dashboard: $PUBLIC_URL/"
    cat <<NEXT
Next steps (docs/admin-guide.md):
  Each keyholder (head, technician) makes their key on their own computer:
    vigil keys create --name head --role head --out head.key
  then copy head.key (password-encrypted) here and propose it:
  sudo -u vigil vigil collector keyholder add --data /var/lib/vigil --key head.key
  sudo -u vigil vigil collector keyholder add --data /var/lib/vigil --key technician.key
  A keyholder signs the first policy (the readers) with their own password:
  sudo -u vigil vigil collector policy publish --data /var/lib/vigil --keyholder technician --password-stdin
  sudo -u vigil vigil collector enrol-token --data /var/lib/vigil --uses 30 --expires 7d
NEXT
}

# --- agent --------------------------------------------------------------------------------
# The agent checks its enrolment by asking /healthz over the pinned TLS connection.
check_connection() {
    "$VENV/bin/python" - "$COLLECTOR_URL" "$CA" "$CA_FPR" <<'PY'
import hashlib, hmac, http.client, ssl, sys, urllib.parse
url, ca, fpr = sys.argv[1:4]
u = urllib.parse.urlsplit(url)
ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
if not ca and not fpr:
    ctx = ssl.create_default_context()
conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=10)
try:
    conn.request("GET", "/healthz")
    if fpr:
        der = conn.sock.getpeercert(binary_form=True)
        seen = hashlib.sha256(der).hexdigest()
        want = fpr.lower().removeprefix("sha256:").replace(":", "")
        if not hmac.compare_digest(seen, want):
            sys.exit(f"the collector's certificate is {seen}, not the pinned {want}")
    status = conn.getresponse().status
except (OSError, ssl.SSLError) as exc:
    sys.exit(f"cannot reach the collector at {url}: {exc}")
if status != 200:
    sys.exit(f"the collector at {url} answered /healthz with HTTP {status}")
PY
}

validate_agent() {
    [ -n "$COLLECTOR_URL" ] && [ -n "$TOKEN" ] && [ -n "$TRUST" ] \
        || die "the agent needs --collector URL --token T --trust FPR (from 'vigil collector enrol-token')"
    [ -n "$CA" ] || [ -n "$CA_FPR" ] || die "pin the collector with --ca CERT or --ca-fingerprint SHA256"
    [ -z "$CA" ] || [ -z "$CA_FPR" ] || die "give --ca or --ca-fingerprint, not both"
    [ -z "$CA" ] || [ -f "$CA" ] || die "no such CA certificate: $CA"
}

validate_collector() {
    case "$PORT" in ''|*[!0-9]*) die "--port must be a number" ;; esac
}

# The marker names the layout: "URL system" since the supervisor (issue 15). A machine enrolled
# under the old per-user layout had its device secret readable by every user: it is enrolled
# again (with the token given now), so that secret is replaced.
enrol_machine() {
    local marker="$AGENT_CONF/.enrolled"
    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$COLLECTOR_URL system" ]; then
        say "already enrolled with $COLLECTOR_URL; checking the connection"
        return 0
    fi
    if [ -f "$marker" ]; then
        say "enrolled under the old per-user layout (device secret readable by every user): enrolling again to replace it"
    fi
    say "enrolling this machine with $COLLECTOR_URL"
    local fresh=0 fresh_state=0
    [ -d "$AGENT_CONF" ] || fresh=1
    [ -d "$AGENT_STATE" ] || fresh_state=1
    mkdir -p "$AGENT_CONF"
    chmod 755 "$ETC"
    local pin=()
    [ -n "$CA" ] && pin=(--ca "$CA")
    [ -n "$CA_FPR" ] && pin=(--ca-fingerprint "$CA_FPR")
    if ! VIGIL_AGENT_SYSTEM_CONFIG_DIR="$AGENT_CONF" VIGIL_AGENT_STATE_DIR="$AGENT_STATE" \
            vigil_cmd agent enrol --system --collector "$COLLECTOR_URL" --token "$TOKEN" \
            --trust "$TRUST" "${pin[@]}"; then
        [ "$fresh" = 1 ] && rm -rf "$AGENT_CONF"
        [ "$fresh_state" = 1 ] && rm -rf "$AGENT_STATE"
        remove_empty_parents "$ETC"
        remove_empty_parents "$(dirname "$AGENT_STATE")"
        die "enrolment failed (the line above says why); nothing else was installed, run this again"
    fi
    echo "$COLLECTOR_URL system" > "$marker"
}

install_agent() {
    enrol_machine
    # Root's files: the trust anchor, the CA pin and the policy readable by every user (their
    # session agents verify under them), the enrolment (the device secret) by root alone.
    chown -R 0:0 "$AGENT_CONF" "$AGENT_STATE"
    chmod 755 "$AGENT_CONF" "$AGENT_STATE"
    find "$AGENT_CONF" "$AGENT_STATE" -maxdepth 1 -type f -exec chmod 644 {} +
    chmod 600 "$AGENT_CONF/enrolment.json"
    check_connection || die "enrolled, but the collector cannot be reached now; fix the network and run this again"

    remove_session_autostart
    put_file "$HERE/systemd/vigil-supervisor.service" "$SYSTEM_UNITS/vigil-supervisor.service" 644
    offline_systemctl enable vigil-supervisor.service
    record_component
    live_systemctl daemon-reload
    if [ "$CHANGED" = 1 ]; then live_systemctl restart vigil-supervisor.service; else live_systemctl start vigil-supervisor.service; fi
    say "agent installed: vigil-supervisor.service runs it in every graphical session and reports to $COLLECTOR_URL"
    return 0
}

"validate_$COMPONENT"
CHANGED=0
ensure_venv
"install_$COMPONENT"
