#!/bin/bash
# A Slurm requeue after the fit finished: `fit --resume` over outputs it wrote itself keeps every
# animal (exit 0), including animals with input channels (/inputs); a resume with another option
# refuses the output and names the option that differs, not both parameter lists.
BIN="$1"; NP="${2:-1}"; MPIEXEC="${3:-mpiexec}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
die() { echo "FAIL: $*"; for f in "$W"/*.log; do echo "== $f"; tail -20 "$f"; done; exit 1; }
launch() {
  if [ "$NP" = 1 ]; then "$BIN" "$@"; else "$MPIEXEC" -n "$NP" --oversubscribe --bind-to none "$BIN" "$@"; fi
}
"$BIN" simulate --preset cohort --animals 2 --regions 3 --units-per-region 12 --samples 201 --modes 2 \
  --pairs-per-mode 2 --out "$W/cohort" --seed 4 > "$W/sim.log" 2>&1 || die "simulate"
h5ls "$W/cohort/a00.h5" | grep -q "^inputs" || die "the simulated animal has no /inputs (test proves nothing)"
OPTS=(fit --cohort "$W/cohort" --out "$W/r" --tau-rnn 0.1 --runs-train 2 --runs-free 1)
launch "${OPTS[@]}" --dt-factor 5 > "$W/fit.log" 2>&1 || die "fit"
cp "$W/r/fits/a00.h5" "$W/a00.before.h5"

launch "${OPTS[@]}" --dt-factor 5 --resume > "$W/requeue.log" 2>&1 || die "fit --resume after a finished fit exited $?"
[ "$(grep -c "finished before" "$W/requeue.log")" = 2 ] || die "--resume did not keep both animals"
cmp -s "$W/a00.before.h5" "$W/r/fits/a00.h5" || die "a kept output was rewritten"

launch "${OPTS[@]}" --resume --dt-factor 4 > "$W/other.log" 2>&1 && die "--resume with another --dt-factor accepted"
grep -q "dt_factor 5 -> 4" "$W/other.log" || die "the mismatch does not name dt_factor 5 -> 4: $(grep error "$W/other.log" | head -2)"
grep -q "tau_rnn=" "$W/other.log" && die "the mismatch still prints the whole parameter list"
# The fit-quality options are part of the fingerprint too (the horizon changes every run's resets).
launch "${OPTS[@]}" --resume --dt-factor 5 --horizon 7 > "$W/horizon.log" 2>&1 && die "--resume with another --horizon accepted"
grep -q "horizon auto -> 7" "$W/horizon.log" || die "the mismatch does not name horizon: $(grep error "$W/horizon.log" | head -2)"
# With smoothed copies of the inputs (--input-smoothing) the finished fits are kept too (the
# staleness check counts the file's inputs, the smoothing is a parameter), and another smoothing
# is named.
SM=(fit --cohort "$W/cohort" --out "$W/s" --tau-rnn 0.1 --dt-factor 5 --runs-train 1 --runs-free 1)
launch "${SM[@]}" --input-smoothing 0.5,1 > "$W/smooth.log" 2>&1 || die "fit --input-smoothing"
h5dump -d /input_names "$W/s/fits/a00.h5" | grep -q '~0.5s' || die "no smoothed input channel in /input_names"
launch "${SM[@]}" --input-smoothing 0.5,1 --resume > "$W/smooth-requeue.log" 2>&1 || die "fit --resume with --input-smoothing exited $?"
[ "$(grep -c "finished before" "$W/smooth-requeue.log")" = 2 ] || die "--resume with --input-smoothing did not keep both animals"
launch "${SM[@]}" --input-smoothing 0.5 --resume > "$W/smooth-other.log" 2>&1 && die "--resume with another --input-smoothing accepted"
grep -q "input_smoothing 0.5,1 -> 0.5" "$W/smooth-other.log" || die "the mismatch does not name input_smoothing: $(grep error "$W/smooth-other.log" | head -2)"
echo "requeue after completion keeps both animals with inputs (and with --input-smoothing); another --dt-factor, --horizon or --input-smoothing is named ($NP ranks)"
