#!/usr/bin/env bash
# Makes sure a PostgreSQL with trust auth answers at 127.0.0.1:5432 with a database "test".
# On the development machines one already runs; on a bare Debian machine this installs and starts one.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_isready >/dev/null || ! ready; then
  "$(dirname "$0")/system-deps.sh" --with-postgres
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$ver/main
  if ! $SUDO grep -q "vigil-test" "$conf/pg_hba.conf"; then
    echo "host all all 127.0.0.1/32 trust # vigil-test" | $SUDO tee -a "$conf/pg_hba.conf" >/dev/null
    echo "host all all ::1/128 trust # vigil-test" | $SUDO tee -a "$conf/pg_hba.conf" >/dev/null
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || $SUDO pg_ctlcluster "$ver" main restart
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  ready || { echo "PostgreSQL did not start at 127.0.0.1:5432" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null 2>&1 \
    || $SUDO -u postgres psql -c "create database test" >/dev/null
fi
