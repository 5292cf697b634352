#!/usr/bin/env bash
# Stop the one-node SLURM of slurm-up.sh: cancel jobs and wait, then slurmd, slurmctld, munged.
set -uo pipefail
STATE=${1:-${AUDIOPREP_SLURM_DIR:-/tmp/audioprep-slurm}}
export SLURM_CONF="$STATE/slurm.conf"
[ -f "$SLURM_CONF" ] || exit 0
scancel --user=root >/dev/null 2>&1 || true
for _ in $(seq 100); do
  [ -z "$(squeue -h 2>/dev/null)" ] && break
  sleep 0.2
done
stop() {  # stop by the pid in a pid file, SIGKILL after 10 s
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
stop /run/munge/munged.pid
echo "slurm-down: stopped"
