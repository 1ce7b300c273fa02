#!/bin/bash
# Kill and resume: a fit sent SIGTERM mid-run writes checkpoints and exits 75; `--resume` then
# ends with exactly (bit for bit) the result of an uninterrupted fit at the same rank count.
# SIGTERM goes to the rank processes themselves, as Slurm sends it before a time limit.
BIN="$1"; NP="${2:-1}"; MPIEXEC="${3:-mpiexec}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
die() { echo "FAIL: $*"; for f in "$W"/*.log; do echo "== $f"; tail -20 "$f"; done; exit 1; }
launch() {
  if [ "$NP" = 1 ]; then "$BIN" "$@"; else "$MPIEXEC" -n "$NP" --oversubscribe --bind-to none "$BIN" "$@"; fi
}
"$BIN" simulate --preset three-region --units-per-region 30 --samples 401 --out "$W/cohort" --seed 3 > "$W/sim.log" 2>&1 || die "simulate"
# --stop-when-flat 0: all 40 runs (the stopping rule would end training early; its resume is FitHeldOut.*)
OPTS=(fit --cohort "$W/cohort" --dt-factor 5 --tau-rnn 0.1 --runs-train 40 --runs-free 1 --checkpoint-every 7 --stop-when-flat 0)

launch "${OPTS[@]}" --out "$W/full" > "$W/full.log" 2>&1 || die "uninterrupted fit"

# exec: $! must be the program (or mpiexec) itself, not a subshell
launch_bg() {
  if [ "$NP" = 1 ]; then exec "$BIN" "$@"; else exec "$MPIEXEC" -n "$NP" --oversubscribe --bind-to none "$BIN" "$@"; fi
}
launch_bg "${OPTS[@]}" --out "$W/part" > "$W/part.log" 2>&1 &
PID=$!
for _ in $(seq 1200); do grep -q "run 6/41" "$W/part.log" && break; sleep 0.1; done
grep -q "run 6/41" "$W/part.log" || die "fit did not reach run 6"
if [ "$NP" = 1 ]; then
  kill -TERM "$PID"
else
  for c in $(pgrep -P "$PID"); do kill -TERM "$c"; done   # the ranks (children of mpiexec)
fi
wait "$PID"; code=$?
[ "$code" = 75 ] || die "interrupted fit exited $code, expected 75"
grep -q "stop requested" "$W/part.log" || die "no checkpoint message"
grep -q "run 41/41" "$W/part.log" && die "the fit finished before SIGTERM arrived (test proves nothing)"
[ -f "$W/part/fits/checkpoints/a00.h5" ] || die "no checkpoint file"
[ -f "$W/part/fits/a00.h5" ] && die "interrupted fit wrote a final output"
grep -q "interrupted" "$W/part/fits/summary.txt" || die "summary does not say interrupted"

launch "${OPTS[@]}" --out "$W/part" --resume > "$W/resume.log" 2>&1 || die "resume failed"
grep -q "resuming from" "$W/resume.log" || die "resume did not use the checkpoint"
[ -f "$W/part/fits/checkpoints/a00.h5" ] && die "checkpoint not removed after finishing"
for ds in /J /pvar /chi2 /rates /currents/mean /currents/inh_rms; do
  h5diff "$W/full/fits/a00.h5" "$W/part/fits/a00.h5" "$ds" "$ds" > "$W/diff.log" 2>&1 || die "$ds differs after resume: $(head -5 "$W/diff.log")"
done
echo "$(grep -h "stop requested\|resuming" "$W/part.log" "$W/resume.log" | head -2 | tr "\n" " ")-> /J /pvar /chi2 /rates /currents identical to the uninterrupted fit ($NP ranks)"
