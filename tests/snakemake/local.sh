#!/usr/bin/env bash
# usage: local.sh COHORTNET SOURCE_DIR
# workflows/Snakefile run locally (snakemake --cores 2) on a small study of the demo's shape
# (simulate preset cohort -> fit -> modes -> report; 3 animals of up to 3 regions x 20 units, 201
# samples, 3 training runs; configs/demo.ini has 8 x 6 x 40 units, 6001 samples, 15 runs, gated):
#  1. its fits and modes equal `mpirun -n 2 cohortnet run` of the same study (h5diff);
#  2. a second `snakemake -n` lists no jobs;
#  3. touching one animal's file reruns exactly that animal's fit, modes and report (the other
#     fits are not rewritten) and the results still equal `cohortnet run`'s (the file is over
#     100 kB: Snakemake 7 ignores a touch of a smaller file whose checksum it recorded);
#  4. changing a fit option reruns every fit (params trigger);
#  5. an animal that fails (NaN in its data): the other fits finish; modes stops naming it with
#     max_failed 0, and runs over the others (report too) with max_failed 1.
# Skips (77) without snakemake.
set -u
bin=$(readlink -f "$1"); src=$(readlink -f "$2")
command -v snakemake >/dev/null || { echo "SKIP: snakemake not installed (scripts/install-deps.sh)"; exit 77; }
source "$src/tests/snakemake/lib.sh"
work=$(mktemp -d /tmp/cohortnet-snakemake-XXXXXX)
trap '[ -n "${COHORTNET_KEEP_TEST_FILES:-}" ] || rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$work"

write_study run.ini "$work/run" 3 3 20 201 3
write_study wf.ini "$work/wf" 3 3 20 201 3
cat >wf.yaml <<EOF
study: $work/wf.ini
cohortnet: $bin
EOF
smk() { snakemake -s "$src/workflows/Snakefile" --configfile wf.yaml --cores 2 "$@"; }

mpirun -n 2 "$bin" run --config run.ini >run.log 2>&1
check "cohortnet run of the study" '[ -f run/results/modes.h5 ]'

smk >smk1.log 2>&1; rc=$?
check "snakemake ran the study (exit $rc)" '[ $rc -eq 0 ] && [ -f wf/results/report/index.html ]'
check "one fit job per animal" '[ "$(grep -c "^rule fit:" smk1.log)" -eq 3 ]'
compare_study run/results wf/results

smk -n >dry1.log 2>&1
check "an unchanged study: snakemake -n lists no jobs" 'grep -q "Nothing to be done" dry1.log && ! grep -q "^Job stats" dry1.log'

before_a0=$(stat -c %Y.%y wf/results/fits/a00.h5); before_a2=$(stat -c %Y.%y wf/results/fits/a02.h5)
check "a01's file is over 100 kB (a touch counts)" '[ "$(stat -c %s wf/cohort/a01.h5)" -gt 100000 ]'
sleep 1.1; touch wf/cohort/a01.h5
smk -n >dry2.log 2>&1
check "touching a01: the dry run lists fit a01, modes, report and nothing else" \
  '[ "$(job_counts dry2.log)" = "all=1 fit=1 modes=1 report=1 truth_check=1" ] && grep -q "wildcards: animal=a01" dry2.log'
smk >smk2.log 2>&1; rc=$?
check "the rerun after touching a01 (exit $rc)" '[ $rc -eq 0 ] && [ "$(job_counts smk2.log)" = "all=1 fit=1 modes=1 report=1 truth_check=1" ]'
check "the other animals' fits were not rewritten" \
  '[ "$(stat -c %Y.%y wf/results/fits/a00.h5)" = "$before_a0" ] && [ "$(stat -c %Y.%y wf/results/fits/a02.h5)" = "$before_a2" ]'
compare_study run/results wf/results

smk -n --config 'fit={"runs-train": 4}' >dry3.log 2>&1
check "changing a fit option reruns every fit" '[ "$(job_counts dry3.log)" = "all=1 fit=3 modes=1 report=1 truth_check=1" ]'

# A failing animal: NaN in a02's data (its fit fails; the others are not touched).
/usr/bin/python3 - <<'EOF'
import h5py, numpy as np
with h5py.File("wf/cohort/a02.h5", "r+") as f:
    d = f["activity"]; x = d[...]; x[0, 0] = np.nan; d[...] = x
EOF
smk --config max_failed=0 >smk3.log 2>&1; rc=$?
check "max_failed 0: snakemake fails (exit $rc)" '[ $rc -ne 0 ]'
check "a02 recorded as failed, the others ok" \
  '[ "$(status_of wf/results/fits/a02.status.json)" = failed ] && [ "$(status_of wf/results/fits/a00.status.json)" = ok ]'
# The message: the workflow's own check, or `cohortnet modes --max-failed` (issue 17) in modes.log.
check "the modes error names a02 and the limit" \
  'cat smk3.log wf/results/workflow/logs/modes.log 2>/dev/null | grep -i "max.failed" | grep -q "a02"'
smk --config max_failed=1 >smk4.log 2>&1; rc=$?
check "max_failed 1: modes and report run over the others (exit $rc)" \
  '[ $rc -eq 0 ] && [ "$(job_counts smk4.log)" = "all=1 modes=1 report=1 truth_check=1" ] && [ -f wf/results/report/index.html ]'
check "modes used the 2 animals that succeeded" 'grep -q "modes: 2 animals" wf/results/workflow/logs/modes.log'
check "the workflow names the failure" 'grep -q "failed: a02" smk4.log'
# The modes' check against the simulated truth (write_study turns it off; a cosine bar of 1 no fit
# reaches makes it fail for certain): every job runs, modes.h5 and the report are kept and say so,
# and snakemake exits non-zero naming it.
smk --config max_failed=1 'modes={"truth-check": "auto", "truth-min-cosine": 1}' >smk5.log 2>&1; rc=$?
check "a failed truth check: snakemake exits non-zero naming it (exit $rc)" \
  '[ $rc -ne 0 ] && grep -q "do not recover the simulated truth" smk5.log'
check "... modes.h5 kept with truth_check fail, the report ran and warns first" \
  'grep -q "^truth check .*: FAIL: " wf/results/modes_summary.txt && grep -q "do not recover the ground truth" wf/results/report/index.html'
smk --config max_failed=1 'modes={"truth-check": "auto", "truth-min-cosine": 1}' >smk6.log 2>&1; rc=$?
check "... and a rerun fails again, running only the gate (exit $rc)" \
  '[ $rc -ne 0 ] && [ "$(job_counts smk6.log)" = "all=1 truth_check=1" ] && grep -q "do not recover the simulated truth" smk6.log'
summary
