#!/usr/bin/env bash
# Snakemake --cluster-status for Slurm without accounting: prints running, success or failed for
# job id $1 from scontrol (squeue as a second opinion), sacct when the job has left scontrol's memory.
id=$1
state=""
for _ in 1 2 3; do
  state=$(scontrol show job "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2)
  [ -n "$state" ] && break
  state=$(squeue -h -j "$id" -o %T 2>/dev/null | head -1)
  [ -n "$state" ] && break
  state=$(sacct -n -X -P -j "$id" -o State 2>/dev/null | head -1 | awk '{print $1}')
  [ -n "$state" ] && break
  sleep 2
done
case "$state" in
  COMPLETED) echo success ;;
  PENDING | CONFIGURING | RUNNING | COMPLETING | SUSPENDED | REQUEUED | REQUEUE_HOLD | REQUEUE_FED | RESIZING | \
    SIGNALING | STAGE_OUT | STOPPED | RESV_DEL_HOLD) echo running ;;
  *) echo failed ;;  # FAILED, CANCELLED, TIMEOUT, PREEMPTED (not requeued), SPECIAL_EXIT, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL, DEADLINE, or unknown
esac
