#!/usr/bin/env bash
# Stop the one-node Grid Engine of sge-up.sh: delete jobs and wait, then execd, qmaster.
set -uo pipefail
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine} SGE_CELL=${SGE_CELL:-default}
command -v qdel >/dev/null || exit 0
host=$(hostname)
qdel -u root '*' >/dev/null 2>&1 || qdel -f -u root >/dev/null 2>&1 || true
for _ in $(seq 100); do
  [ -z "$(qstat -u '*' 2>/dev/null)" ] && break
  sleep 0.2
done
stop() {  # by the pid in its pid file (the execd's spool folder is named after the host alias)
  local pid
  for f in "$@"; do [ -f "$f" ] && pid=$(cat "$f") && break; done
  [ -n "${pid:-}" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
stop /var/spool/gridengine/execd/*/execd.pid
stop /var/spool/gridengine/qmaster/qmaster.pid
echo "sge-down: stopped"
