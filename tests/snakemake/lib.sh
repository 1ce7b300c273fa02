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
stop-when-flat = 0
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
# these tests are about the workflow: the modes of 3 tiny fits are not checked against the truth
truth-check = off
[report]
INI
}

# job_counts LOG: the first "Job stats" table of a snakemake log as "rule=count ..." (sorted).
job_counts() {
  awk '/^Job stats:/{t=1; next} t && /^total/{exit} t && $2 ~ /^[0-9]+$/{print $1 "=" $2}' "$1" | sort | tr '\n' ' ' | sed 's/ $//'
}

# same_h5 A B: h5diff finds every dataset (bit for bit) and every group's attributes equal; the
# root attributes are equal too except those that record where the file was made (config: the
# options with their paths, regions_from; source and cohort: paths, compared by their last part),
# and /animal_files names the same files.
same_h5() {
  h5diff -c --exclude-attribute / --exclude-path /animal_files "$1" "$2" >/dev/null 2>&1 || { echo "h5diff $1 $2:"; h5diff -c --exclude-attribute / --exclude-path /animal_files "$1" "$2" | head -5; return 1; }
  /usr/bin/python3 - "$1" "$2" <<'PY'
import os, sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
bad = []
for k in sorted(set(a.attrs) | set(b.attrs)):
    if k in ("config", "regions_from"):
        continue
    if k not in a.attrs or k not in b.attrs:
        bad.append(k); continue
    x, y = a.attrs[k], b.attrs[k]
    if k in ("source", "cohort"):  # paths (issue 17 records the cohort folder too): the same name
        x, y = os.path.basename(os.path.normpath(str(x))), os.path.basename(os.path.normpath(str(y)))
    if not np.array_equal(np.asarray(x), np.asarray(y)):
        bad.append(k)
if ("animal_files" in a) != ("animal_files" in b):
    bad.append("/animal_files")
elif "animal_files" in a:
    base = lambda f: [os.path.basename(v.decode() if isinstance(v, bytes) else v) for v in f["animal_files"][...]]
    if base(a) != base(b):
        bad.append("/animal_files")
if bad:
    print("root attributes differ:", ", ".join(bad))
sys.exit(1 if bad else 0)
PY
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

# status_of FILE: the "status" field of a fit status file (OUT/fits/<animal>.status.json).
status_of() {
  /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("status"))' "$1" 2>/dev/null
}
