#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the tests (needs root, slurm-wlm, munge).
# usage: source cluster.sh; cluster_start DIR; ... ; cluster_stop DIR
# Everything lives in DIR (config, state, logs, pid files); clients find it through SLURM_CONF.
# Daemons are stopped by the pids in their pid files, nothing broader.

cluster_start() {
  local dir=$1 cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(awk '/MemTotal/{print int($2/1024*0.9)}' /proc/meminfo)
  mkdir -p "$dir"/{state,spool,log}
  chmod 755 "$dir"
  # munge: one daemon per machine; reuse it if it already answers.
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    [ -f /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null;
                                     chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }
    runuser -u munge -- /usr/sbin/munged --pid-file="$dir/munged.pid" || return 1
    # The munge user cannot write into DIR (root's, 755): its pid file may be missing, so the pid
    # of the daemon started here is recorded by root (cluster_stop kills it, nothing broader).
    pgrep -n -u munge -f -- "--pid-file=$dir/munged.pid" >"$dir/munged.ours" || true
  fi
  cat >"$dir/slurm.conf" <<CONF
ClusterName=cohortnet-test
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=$((6817 + RANDOM % 200 * 2))
SlurmdPort=$((7817 + RANDOM % 200 * 2))
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
EnforcePartLimits=ALL
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=600
JobRequeue=1
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$dir/slurm.conf"
  /usr/sbin/slurmctld -c -f "$SLURM_CONF" || return 1
  /usr/sbin/slurmd -N localhost -f "$SLURM_CONF" || return 1
  local i
  for i in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^idle'; then return 0; fi
    sleep 0.5
  done
  echo "cluster_start: node did not become idle" >&2
  sinfo >&2; tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2
  return 1
}

cluster_stop() {
  local dir=$1 f pid
  for f in slurmd slurmctld; do
    [ -f "$dir/$f.pid" ] || continue
    pid=$(cat "$dir/$f.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ -s "$dir/munged.ours" ]; then
    kill "$(cat "$dir/munged.ours")" 2>/dev/null
  fi
  return 0
}

# Waits until job $1 (and its array tasks) have left the queue; prints its final state.
wait_job() {
  local id=$1 timeout=${2:-600} t=0 state
  while [ $t -lt "$timeout" ]; do
    if [ -z "$(squeue -h -j "$id" 2>/dev/null)" ]; then break; fi
    sleep 1; t=$((t + 1))
  done
  state=$(scontrol show job "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2)
  echo "${state:-GONE}"
}
