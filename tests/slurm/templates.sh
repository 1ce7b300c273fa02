#!/usr/bin/env bash
# usage: templates.sh SLURM_DIR
# The hand-written slurm/fit.sbatch without a cluster (srun and scontrol replaced by stubs): it
# finds the cohort from [fit] cohort of the study file (not the study file's folder), picks the
# task's animal, and requeues on exit 75.
set -u
slurm=$1
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
die() { echo "FAIL: $*"; cat "$W/out" 2>/dev/null; exit 1; }
mkdir -p "$W/bin" "$W/study" "$W/data/mice"
printf '#!/bin/bash\necho "srun $*"; exit ${FAKE_RC:-0}\n' > "$W/bin/srun"
printf '#!/bin/bash\necho "scontrol $*"\n' > "$W/bin/scontrol"
chmod +x "$W/bin/"*
printf '# manifest\nregions = a,b\nanimal = m1.h5\nanimal = m2.h5\n' > "$W/data/mice/cohort.ini"
printf '[fit]\ncohort = %s\nout = %s/results\n[modes]\nout = x\n' "$W/data/mice" "$W" > "$W/study/study.ini"
PATH="$W/bin:$PATH" SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_JOB_ID=9 bash "$slurm/fit.sbatch" "$W/study/study.ini" > "$W/out" 2>&1 \
  || die "fit.sbatch exited $?"
grep -q "fit --config $W/study/study.ini --animals m2 --resume" "$W/out" || die "task 1 is not animal m2 of [fit] cohort"
PATH="$W/bin:$PATH" FAKE_RC=75 SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=9 bash "$slurm/fit.sbatch" "$W/study/study.ini" > "$W/out" 2>&1 \
  || die "an interrupted task (75) did not exit 0 after requeueing"
grep -q "scontrol requeue 9_0" "$W/out" || die "exit 75 does not requeue the task"
# Without a manifest: the cohort's *.h5 files, sorted.
rm "$W/data/mice/cohort.ini"; touch "$W/data/mice/b.h5" "$W/data/mice/a.h5"
PATH="$W/bin:$PATH" SLURM_ARRAY_TASK_ID=0 bash "$slurm/fit.sbatch" "$W/study/study.ini" > "$W/out" 2>&1 || die "no manifest"
grep -q -- "--animals a --resume" "$W/out" || die "without cohort.ini task 0 is not the first *.h5"
grep -q "afterany" "$slurm/modes.sbatch" || die "modes.sbatch still depends with afterok"
echo "slurm templates: cohort from [fit] cohort, task -> animal, requeue on 75"
