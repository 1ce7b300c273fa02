# Sourced by the workflow tests (local.sh, slurm.sh).
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); echo "ok: $1"; else fails=$((fails+1)); echo "FAIL: $1"; fi; }
summary() { echo "$passes passed, $fails failed"; [ "$fails" -eq 0 ]; }

# write_study FILE DIR ANIMALS REGIONS UNITS SAMPLES RUNS: a study file of the demo's shape
# (configs/demo.ini: simulate preset cohort -> fit -> modes -> report) with its folders under DIR.
write_study() {
  cat >"$1" <<INI
[simulate]
preset = cohort
animals = $3
regions = $4
modes = 2
units-per-region = $5
samples = $6
seed = 1
out = $2/cohort
[fit]
cohort = $2/cohort
out = $2/results
dt-factor = 2
tau-rnn = 0.1
runs-train = $7
runs-free = 1
seed = 1
checkpoint-every = 1
[modes]
input = $2/results
cohort = $2/cohort
out = $2/results
k = 2
starts = 2
permutations = 19
loo-null = 2
seed = 1
[report]
INI
}

# job_counts LOG: the first "Job stats" table of a snakemake log as "rule=count ..." (sorted).
job_counts() {
  awk '/^Job stats:/{t=1; next} t && /^total/{exit} t && $2 ~ /^[0-9]+$/{print $1 "=" $2}' "$1" | sort | tr '\n' ' ' | sed 's/ $//'
}

# same_h5 A B: every dataset and attribute equal, except the attributes that record where and when
# the file was made (paths, configuration text, times).
same_h5() {
  h5diff -c "$1" "$2" $H5DIFF_EXCLUDE >/dev/null 2>&1
}

# compare_study RUN WF: fits (every animal) and modes.h5 of two results folders are equal.
compare_study() {
  local a=$1 b=$2 f id n=0
  for f in "$a"/fits/*.h5; do
    id=$(basename "$f")
    n=$((n+1))
    check "fit $id equals cohortnet run's" 'same_h5 "$f" "$b/fits/$id"'
  done
  check "fits compared ($n)" '[ $n -gt 0 ] && [ "$(ls "$b"/fits/*.h5 | wc -l)" -eq $n ]'
  check "modes.h5 equals cohortnet run's" 'same_h5 "$a/modes.h5" "$b/modes.h5"'
}
