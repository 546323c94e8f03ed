#!/usr/bin/env bash
# The project's copy of ../shared/slurm/stop-slurm.sh.
# Stop the daemons started by start-slurm.sh, using only the PIDs it recorded in $SLURM_DIR/run.
set -uo pipefail
[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"
RUN=${SLURM_DIR:-/tmp/slurm}/run
alive() { local f=$RUN/$1.pid p; [ -s "$f" ] || return 1; p=$(cat "$f")
  [ -r "/proc/$p/comm" ] && [ "$(cat "/proc/$p/comm")" = "$1" ]; }   # pid file name == comm
stop() { # SIGTERM the recorded daemons given as args, wait (max 30 s), then SIGKILL leftovers
  local n p pids=""
  for n; do alive "$n" && { p=$(cat "$RUN/$n.pid"); echo "stopping $n (pid $p)"; kill "$p"; pids="$pids $p"; }
    rm -f "$RUN/$n.pid"; done
  for ((i = 0; i < 120; i++)); do
    local left=""; for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    pids=$left; [ -z "$pids" ] && return 0; sleep 0.25; done
  echo "SIGKILL:$pids"; kill -9 $pids 2>/dev/null || true; }
if alive slurmctld; then       # cancel leftover jobs (by job id) so their job steps end
  ids=$(squeue -h -o %A 2>/dev/null || true)
  if [ -n "$ids" ]; then scancel $ids || true
    for ((i = 0; i < 60; i++)); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done; fi
fi
stop slurmd slurmctld slurmdbd
stop mariadbd munged
