#!/usr/bin/env bash
# Install (if needed) and start a one-node Grid Engine on this Debian machine, as root, without systemd.
# Usage: bash cluster/sge-up.sh      Prints the lines to export SGE_ROOT / SGE_CELL.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
host=$(hostname)
if ! command -v qconf >/dev/null || [ ! -x /usr/sbin/sge_qmaster ] && [ ! -x /usr/lib/gridengine/sge_qmaster ]; then
  echo "gridengine-common shared/gridenginesgeroot string /var/lib/gridengine" | debconf-set-selections
  printf '%s\n' \
    "gridengine-common shared/gridengineconfig boolean true" \
    "gridengine-common shared/gridenginecell string default" \
    "gridengine-common shared/gridenginemaster string $host" \
    "gridengine-client shared/gridengineconfig boolean true" \
    "gridengine-client shared/gridenginecell string default" \
    "gridengine-client shared/gridenginemaster string $host" \
    "gridengine-master shared/gridengineconfig boolean true" \
    "gridengine-master shared/gridenginecell string default" \
    "gridengine-master shared/gridenginemaster string $host" \
    | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq gridengine-master gridengine-exec gridengine-client >/dev/null 2>&1 || \
    apt-get install -y -qq gridengine-master gridengine-exec gridengine-client
fi
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
common=$SGE_ROOT/$SGE_CELL/common
# The host name must resolve both ways to the same name.
echo "$host localhost" > "$common/host_aliases"
echo "$host" > "$common/act_qmaster"
grep -q "[[:space:]]$host\b" /etc/hosts || echo "127.0.0.1 $host" >> /etc/hosts

running() { pgrep -x "$1" >/dev/null; }
find_bin() { for d in /usr/sbin /usr/lib/gridengine /usr/bin; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done; command -v "$1"; }
running sge_qmaster || "$(find_bin sge_qmaster)"
for _ in $(seq 100); do qstat >/dev/null 2>&1 && break; sleep 0.2; done

tmp=$(mktemp -d)
# Jobs as root; a 1 s scheduler interval; this host as admin, submit and exec host.
qconf -sconf global > "$tmp/global"
sed -i -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' "$tmp/global"
qconf -Mconf "$tmp/global" >/dev/null 2>&1 || true
qconf -ssconf > "$tmp/sched"
sed -i 's/^schedule_interval .*/schedule_interval 0:0:1/' "$tmp/sched"
qconf -Msconf "$tmp/sched" >/dev/null 2>&1 || true
qconf -ah "$host" >/dev/null 2>&1 || true
qconf -as "$host" >/dev/null 2>&1 || true
if ! qconf -sel 2>/dev/null | grep -qx "$host"; then
  printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' "$host" > "$tmp/exec"
  qconf -Ae "$tmp/exec" >/dev/null 2>&1 || true
fi
running sge_execd || "$(find_bin sge_execd)"
# The all.q queue on this host with one slot per core and no parallel environments.
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  # qconf -aq edits its full template with $EDITOR: let a script make the edits.
  cat > "$tmp/edit" <<ED
#!/bin/sh
sed -i -e 's/^hostlist .*/hostlist $host/' -e 's/^slots .*/slots $(nproc)/' \\
       -e 's/^pe_list .*/pe_list NONE/' -e 's|^shell .*|shell /bin/bash|' "\$1"
ED
  chmod +x "$tmp/edit"
  EDITOR="$tmp/edit" qconf -aq all.q >/dev/null
fi
rm -rf "$tmp"

for _ in $(seq 150); do
  if qstat -f 2>/dev/null | grep -q "all.q@"; then
    if ! qstat -f 2>/dev/null | grep "all.q@" | awk '{print $NF}' | grep -qE "^[auAdEcsSo]+$"; then
      echo "export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL"
      exit 0
    fi
  fi
  sleep 0.2
done
echo "sge-up: the queue all.q did not come up" >&2
qstat -f >&2 || true
exit 1
