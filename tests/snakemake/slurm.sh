#!/usr/bin/env bash
# usage: slurm.sh COHORTNET SOURCE_DIR
# workflows/Snakefile through the real single-node Slurm cluster of tests/slurm/cluster.sh, with the
# profile workflows/profiles/slurm (generic cluster mode: sbatch + scontrol status; the test cluster
# has no accounting, which Snakemake 7's --slurm executor needs). A small study of the demo's shape
# (simulate -> fit -> modes -> report, 2 animals of up to 3 regions x 40 units, 401 samples, 150
# training runs so that a fit is still running when it is signalled):
#  - one fit job is sent SIGTERM through Slurm (scancel --signal=TERM) mid-fit: it checkpoints and
#    exits 75, its job fails, Snakemake retries it (attempt 2) and the retry resumes;
#  - every job of the workflow ran as a Slurm job and the workflow ends successfully;
#  - fits and modes equal `cohortnet run` of the same study on this machine (h5diff);
#  - `snakemake -n` with the profile afterwards lists no jobs.
# Needs root, slurm-wlm, munge and snakemake; skips (77) without them.
set -u
bin=$(readlink -f "$1"); src=$(readlink -f "$2")
if [ "$(id -u)" -ne 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "SKIP: needs root, slurm-wlm and munge"; exit 77
fi
command -v snakemake >/dev/null || { echo "SKIP: snakemake not installed (scripts/install-deps.sh)"; exit 77; }
source "$src/tests/slurm/cluster.sh"
source "$src/tests/snakemake/lib.sh"
work=$(mktemp -d /tmp/cohortnet-smk-slurm-XXXXXX)
chmod 755 "$work"
smk_pid=""
cleanup() {
  [ -n "$smk_pid" ] && kill "$smk_pid" 2>/dev/null
  for j in $(squeue -h -o %i 2>/dev/null); do scancel "$j" 2>/dev/null; done
  cluster_stop "$work/cluster"
  [ -n "${COHORTNET_KEEP_TEST_FILES:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$work"
cluster_start "$work/cluster" || { echo "FAIL: cluster did not start"; exit 1; }

for s in run wf; do
  write_study $s.ini "$work/$s" 2 3 40 401 150
  cat >>$s.ini <<INI
[submit]
mem-per-node = 8
cores-per-node = $(nproc)
time-fit = 00:20:00
time-modes = 00:20:00
signal-lead = 60
modes-ranks = 1
INI
done
cat >wf.yaml <<EOF
study: $work/wf.ini
cohortnet: $bin
EOF
smk() { snakemake -s "$src/workflows/Snakefile" --configfile wf.yaml --profile "$src/workflows/profiles/slurm" "$@"; }

smk >smk.log 2>&1 &
smk_pid=$!
# Wait until a00's fit has done a few runs (checkpointing every run), then SIGTERM its job through Slurm.
log0="$work/wf/results/workflow/logs/fit/a00.log"
for _ in $(seq 1 600); do
  grep -qE "a00: run (5|6|7|8|9|[1-9][0-9])/" "$log0" 2>/dev/null && break
  kill -0 $smk_pid 2>/dev/null || break
  sleep 0.5
done
job=$(squeue -h -o "%i %j" | awk '$2 == "cohortnet-fit-animal=a00" {print $1; exit}')
check "a00's fit runs as Slurm job ($job) and has checkpointed" '[ -n "$job" ] && [ -f "$work/wf/results/fits/checkpoints/a00.h5" ]'
[ -n "$job" ] && scancel --signal=TERM "$job" && echo "sent SIGTERM to job $job"

for _ in $(seq 1 1600); do kill -0 $smk_pid 2>/dev/null || break; sleep 0.5; done
wait $smk_pid; rc=$?; smk_pid=""
tail -25 smk.log
check "the workflow finished (exit $rc)" '[ $rc -eq 0 ] && [ -f "$work/wf/results/report/index.html" ]'
check "its jobs ran through sbatch" '[ "$(grep -c "Submitted job .* with external jobid" smk.log)" -ge 5 ]'
check "a00's fit stopped on SIGTERM with a checkpoint" 'grep -q "stop requested (SIGTERM)" "$log0"'
check "the failed job was retried (attempt 2) and resumed from the checkpoint" \
  'grep -q "attempt 2" "$log0" && grep -q "resuming from" "$log0"'
check "the retry was a new Slurm job" '[ "$(grep -l "wildcards: animal=a00" .snakemake/slurm-logs/fit-*.out | wc -l)" -eq 2 ]'
check "a00 ok" '[ "$(status_of "$work/wf/results/fits/a00.status.json")" = ok ]'

mpirun -n 1 "$bin" run --config run.ini >run.log 2>&1
check "cohortnet run of the same study" '[ -f "$work/run/results/modes.h5" ]'
compare_study "$work/run/results" "$work/wf/results"

smk -n >dry.log 2>&1
check "after the study: snakemake -n lists no jobs" 'grep -q "Nothing to be done" dry.log && ! grep -q "^Job stats" dry.log'
summary
