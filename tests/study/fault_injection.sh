#!/usr/bin/env bash
# usage: fault_injection.sh COHORTNET MPIEXEC PYTHON
# A small simulated study (3 animals) through fit, modes and report, once clean and then with one
# fault at a time: a truncated file, a foreign file, a NaN animal, a diverging animal, kill -9 and
# SIGTERM mid-fit followed by --resume, a requeue after completion, two fits into one folder, a
# stale fit from other options. Each checks the exit code, that the message names the animal /
# file / option, that the other animals' results are bit-identical (h5diff) to the clean run, and
# that the report lists exactly the failed animals with their reasons.
set -uo pipefail
B=$1 MPIEXEC=$2 PY=$3
W=$(mktemp -d /tmp/cohortnet-faults.XXXXXX)
SLEEPER=
trap '[ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null; [ -n "${COHORTNET_KEEP_TEST_FILES:-}" ] || rm -rf "$W"' EXIT
cd "$W"
die() { echo "FAIL: $*"; for f in "$W"/*.log; do echo "== $f"; tail -15 "$f"; done; exit 1; }
FIT=(--tau-rnn 0.1 --dt-factor 2 --runs-train 2 --runs-free 1)
MODES=(--k 2 --starts 2 --no-conserve --truth-check off)  # the tests here are about faults
"$B" simulate --preset cohort --animals 3 --regions 3 --units-per-region 10 --samples 201 --modes 2 \
  --seed 5 --out clean_cohort > sim.log 2>&1 || die "simulate"
"$B" fit --cohort clean_cohort --out clean "${FIT[@]}" > clean.log 2>&1 || die "clean fit exited $?"

# fit rc: the fit's exit code and message; same: the animals' fits equal the clean run's bit for bit;
# failed: the status files and the report list exactly these animals as failed, with these words.
fit() { local out=$1; shift; "$B" fit --out "$out" "${FIT[@]}" "$@" > "$out.log" 2>&1; echo $?; }
same() { local out=$1; shift
  for a in "$@"; do
    for ds in /J /pvar /rates /currents/rms; do
      h5diff "${REF:-clean}/fits/$a.h5" "$out/fits/$a.h5" $ds $ds > diff.log 2>&1 || die "$out: $a $ds differs from the clean run"
    done
  done; }
status_is() { grep -q "\"status\": \"$3\"" "$1/fits/$2.status.json" 2>/dev/null || die "$1: $2 status is not $3: $(cat "$1/fits/$2.status.json" 2>&1)"; }
report_failed() {  # report_failed OUT "a01=word" ...: the report's failed animals, exactly, with reasons
  "$B" report --results "$1" --python "$PY" > "$1.report.log" 2>&1 || die "report of $1 exited $?"
  "$PY" - "$1/report/summary.json" "${@:2}" <<'PYEOF' || die "report of $1 does not list the failures"
import json, sys
s = json.load(open(sys.argv[1]))
want = dict(x.split("=", 1) for x in sys.argv[2:])
got = {a["id"]: a["reason"] for a in s["animals"] if a["status"] == "failed"}
assert set(got) == set(want), "failed animals %s, expected %s" % (sorted(got), sorted(want))
for a, w in want.items():
    assert w in got[a], "%s: reason %r lacks %r" % (a, got[a], w)
PYEOF
}
modes_ok() { "$B" modes --input "$1" --out "$1" "${MODES[@]}" "${@:2}" > "$1.modes.log" 2>&1 || die "modes on $1 exited $?"; }
cohort_copy() { rm -rf "$1"; cp -r clean_cohort "$1"; }

# 0. The clean study: modes over all three, the report lists no failure.
for a in a00 a01 a02; do status_is clean $a ok; done
grep -q '"output": "/' clean/fits/a00.status.json || die "status output is not an absolute path"
"$PY" -c "import h5py,sys; s=h5py.File('clean/fits/a00.h5')['/'].attrs['source']; s=s.decode() if isinstance(s,bytes) else s; sys.exit(0 if s.startswith('/') else 1)" \
  || die "fit attribute source is not absolute"
modes_ok clean
# A fit marked poor (did not beat its baseline) is left out, and named, unless --include-poor.
cp -r clean rp; sed -i 's/"status": "ok"/"status": "poor"/' rp/fits/a02.status.json
modes_ok rp; grep -q "left out: a02 (poor" rp/modes_summary.txt || die "poor: a02 not left out"
modes_ok rp --include-poor; grep -q "left out" rp/modes_summary.txt && die "poor: --include-poor still left a02 out"
# A gated fit whose gains were kept in no target region: `--summary gains` leaves that animal out,
# named, and factors the others (it used to stop the stage). Gains written into copies of the fits.
cp -r clean rg
"$PY" - rg/fits <<'PYEOF' || die "gains: could not write gains into the fits"
import os, sys
import h5py, numpy as np
for a, kept in (("a00", [1, 1, 1]), ("a01", [1, 0, 1]), ("a02", [0, 0, 0])):
    with h5py.File(os.path.join(sys.argv[1], a + ".h5"), "a") as f:
        M, T = len(f["currents/region_names"]), f["currents/rms"].shape[2]
        t = np.arange(T)
        f["gains"] = np.array([[1 + 0.5 * np.sin(0.1 * t + q + 2 * s) for s in range(M)] for q in range(M)])
        f.create_group("gains_model")["kept"] = np.array(kept[:M], dtype=np.int64)
PYEOF
modes_ok rg --summary gains
grep -q "left out: a02 (the fit kept gains in none of its target regions" rg/modes_summary.txt \
  || die "gains: a02 (no gains kept) not left out by name"
# ... and the report says at the top that the modes include a fit that does not beat its baseline.
"$B" report --results rp --python "$PY" > rp.report.log 2>&1 || die "report of rp exited $?"
"$PY" - rp/report/summary.json rp/report/index.html <<'PYEOF' || die "report of rp does not warn about the poor fit a02"
import json, sys
s = json.load(open(sys.argv[1])); page = open(sys.argv[2]).read()
assert s["n_poor"] == 1 and s["n_ok"] == 2, (s["n_poor"], s["n_ok"])
w = " ".join(s["warnings"])
assert "a02" in w and "include fits that do not beat their baselines" in w, w
a02 = [a for a in s["animals"] if a["id"] == "a02"][0]
assert a02["pvar_heldout"] is not None and a02["baseline_best"] is not None, a02
assert page.find('class="warning"') < page.find('id="summary"'), "warning is not at the top"
PYEOF
# An animal no fit attempted (a Slurm task that never ran) is named as missing, not silently absent.
rm rp/fits/a01.h5 rp/fits/a01.status.json
modes_ok rp --include-poor; grep -q "left out: a01 (in cohort .* but never fitted" rp/modes_summary.txt || die "never fitted: a01 not named"

# 1. A truncated file fails its animal only (also when another animal is selected).
cohort_copy c1; head -c 3000 clean_cohort/a01.h5 > c1/a01.h5
rc=$(fit r1 --cohort c1); [ "$rc" = 1 ] || die "truncated: fit exited $rc, expected 1"
grep -q "animal a01: .*a01.h5" r1.log || die "truncated: the error does not name a01 and its file"
same r1 a00 a02; status_is r1 a01 failed
modes_ok r1; grep -q "a01" r1.modes.log || die "truncated: modes does not name the animal it left out"
report_failed r1 "a01=a01.h5"
rc=$(fit r1b --cohort c1 --animals a02); [ "$rc" = 0 ] || die "truncated: --animals a02 exited $rc"
same r1b a02

# 2. A foreign HDF5 file in one animal's place and 3. a NaN in another's activity.
cohort_copy c2
"$PY" -c "import h5py; h5py.File('c2/a02.h5','w')['x'] = [1, 2, 3]"
"$PY" -c "import h5py; f=h5py.File('c2/a00.h5','r+'); a=f['activity']; a[3,7]=float('nan')"
rc=$(fit r2 --cohort c2); [ "$rc" = 1 ] || die "foreign + NaN: fit exited $rc"
grep -q "a02.h5: not a cohortnet animal file" r2.log || die "foreign: the error does not name the file"
grep -q "a00.h5: dataset /activity has NaN at unit 3, sample 7" r2.log || die "NaN: not named"
same r2 a01
modes_ok r2 --max-failed 2; report_failed r2 "a02=not a cohortnet animal file" "a00=NaN at unit 3"
# 4. A diverging animal (sample interval 20 x tau): refused before it runs (the Euler-stepped
# network would saturate or diverge), naming dt/tau.
cohort_copy c4
"$PY" -c "import h5py; f=h5py.File('c4/a01.h5','r+'); f.attrs['sample_interval']=2.0"
rc=$(fit r4 --cohort c4); [ "$rc" = 1 ] || die "diverging: fit exited $rc"
grep -q "a01.*dt/tau" r4.log || die "diverging: not named"
same r4 a00 a02; modes_ok r4; report_failed r4 "a01=dt/tau"
# More failures than --max-failed: modes refuses, naming them.
"$B" modes --input r4 --out r4 "${MODES[@]}" --max-failed 0 > r4.refuse.log 2>&1 && die "--max-failed 0 accepted a failed animal"
grep -q "more than --max-failed 0: a01" r4.refuse.log || die "--max-failed refusal does not name a01"

# 5. kill -9 mid-fit, then --resume: the same result as an uninterrupted run (longer, so the
# signals land inside a01's fit); the dead fit's lock is taken over with a warning.
SLOW=(--cohort clean_cohort --tau-rnn 0.1 --dt-factor 2 --runs-train 30 --runs-free 1 --checkpoint-every 1 --stop-when-flat 0)
"$B" fit --out slow "${SLOW[@]}" > slow.log 2>&1 || die "uninterrupted slow fit exited $?"
wait_for() { for _ in $(seq 1500); do grep -q "$2" "$1" && return 0; sleep 0.02; done; die "never saw '$2' in $1"; }
"$B" fit --out r5 "${SLOW[@]}" > r5.log 2>&1 &
PID=$!
wait_for r5.log "a01: run 5/31"
kill -9 $PID; wait $PID 2>/dev/null
[ -f r5/fits/a01.h5.lock ] || die "kill -9: no lock left to take over"
status_is r5 a01 interrupted
"$B" fit --out r5 "${SLOW[@]}" --resume > r5.resume.log 2>&1 || die "kill -9: resume exited $?"
grep -q "a01.h5.lock was left by process $PID" r5.resume.log || die "kill -9: stale lock not reported"
REF=slow same r5 a00 a01 a02

# 6. SIGTERM mid-fit: exit 75, status interrupted, then --resume gives the uninterrupted result.
"$B" fit --out r6 "${SLOW[@]}" > r6.log 2>&1 &
PID=$!
wait_for r6.log "a01: run 5/31"
kill -TERM $PID; wait $PID; rc=$?
[ "$rc" = 75 ] || die "SIGTERM: fit exited $rc, expected 75"
status_is r6 a01 interrupted
[ -f r6/fits/a02.status.json ] && die "SIGTERM: a02 (not started) has a status file"
"$B" fit --out r6 "${SLOW[@]}" --resume > r6.resume.log 2>&1 || die "SIGTERM: resume exited $?"
REF=slow same r6 a00 a01 a02

# 7. A requeue after completion keeps everything (exit 0, files untouched).
cp -r clean r7
rc=$(fit r7 --cohort clean_cohort --resume); [ "$rc" = 0 ] || die "requeue: exited $rc"
same r7 a00 a01 a02; for a in a00 a01 a02; do status_is r7 $a ok; done

# 8. Two writers: a live lock holder makes the fit skip that animal with exit 73, naming the file;
# two fits at once into one folder both end well and leave the clean result.
mkdir -p r8/fits; sleep 300 & SLEEPER=$!
echo "$SLEEPER $(hostname)" > r8/fits/a01.h5.lock
rc=$(fit r8 --cohort clean_cohort); [ "$rc" = 73 ] || die "locked: fit exited $rc, expected 73"
grep -q "output .*a01.h5 is locked by process $SLEEPER" r8.log || die "locked: the error does not name the file and holder"
same r8 a00 a02
kill $SLEEPER; SLEEPER=
"$B" fit --out r9 --cohort clean_cohort "${FIT[@]}" > r9a.log 2>&1 & P1=$!
"$B" fit --out r9 --cohort clean_cohort "${FIT[@]}" > r9b.log 2>&1 & P2=$!
wait $P1; r1=$?; wait $P2; r2=$?
for r in $r1 $r2; do [ "$r" = 0 ] || [ "$r" = 73 ] || die "concurrent: a fit exited $r"; done
same r9 a00 a01 a02
ls r9/fits | grep -q "partial\|\.lock" && die "concurrent: temporaries or locks left: $(ls r9/fits)"

# 9. A stale fit from other options: modes refuses it naming the option; submit does not call it
# done; fit --resume fails it (status failed) and modes then runs over the others.
cp -r clean r10
"$B" fit --out r10 --cohort clean_cohort --tau-rnn 0.1 --dt-factor 2 --runs-train 3 --runs-free 1 --animals a01 > r10.log 2>&1 || die "stale: refit"
"$B" modes --input r10 --out r10 "${MODES[@]}" > r10.modes.log 2>&1 && die "stale: modes accepted mixed options"
grep -q "a01.h5 was fitted with other options .*runs_train 2 -> 3" r10.modes.log || die "stale: modes does not name the option"
cat > study.ini <<INI
[fit]
cohort = $W/clean_cohort
out = $W/r10
tau-rnn = 0.1
dt-factor = 2
runs-train = 2
runs-free = 1
[modes]
input = $W/r10
out = $W/r10
INI
"$B" submit --config study.ini --dry-run --mem-per-node 4 --cores-per-node 2 > r10.submit.log 2>&1 || die "stale: submit --dry-run exited $?"
grep -q "^a01 .*fitted with other options (runs_train 3 -> 2)" r10.submit.log || die "stale: submit does not flag a01"
grep -q "^a00 .*done" r10.submit.log || die "stale: submit does not call a00 done"
grep -q "afterany" r10.submit.log || die "submit: modes does not run after a partly failed fit array"
! grep -q "NOT in the fit time" r10.submit.log || die "submit: a fixed-J study's plan warns about a gated start"
sed 's/^runs-free = 1$/runs-free = 1\ngains = inputs/' study.ini > gated.ini
"$B" submit --config gated.ini --dry-run --mem-per-node 4 --cores-per-node 2 > gated.submit.log 2>&1 || die "gated: submit --dry-run exited $?"
grep -q "NOT in the fit time: the gated start" gated.submit.log || die "submit: a gated study's time estimate does not say it omits the gated start"
rc=$(fit r10 --cohort clean_cohort --resume); [ "$rc" = 1 ] || die "stale: fit --resume exited $rc"
grep -q "a01.*runs_train 3 -> 2" r10.log || die "stale: fit --resume does not name the option"
modes_ok r10
# A fit refitted after the modes: the report flags modes.h5 as stale (and lists the failure).
sleep 1; touch r10/fits/a00.h5
report_failed r10 "a01=runs_train 3 -> 2"
grep -q "a00: fit file .* is newer than" r10/report/summary.json || die "report does not flag modes older than a fit"

# 10. modes checks its output folder and --k before working.
touch afile   # a file where the folder should be: unwritable even for root
"$B" modes --input clean --out afile/x "${MODES[@]}" > ro.log 2>&1 && die "unwritable --out accepted"
grep -q "option --out: cannot create folder afile/x" ro.log || die "unwritable --out not named: $(cat ro.log)"
grep -q "animals, " ro.log && die "modes loaded the fits before finding --out unwritable"
"$B" modes --input clean --out clean --k 7 --starts 2 --no-conserve > k.log 2>&1 && die "--k 7 on 6 pairs accepted"
grep -q "option --k: 7 modes is more than the 6 region pairs" k.log || die "--k refusal does not name --k"
echo "fault injection: every fault cost only its animal; messages, exit codes, reports as expected"
