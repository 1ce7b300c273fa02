#!/bin/bash
# `cohortnet ingest` from the command line: the two real data sets (tests/data) through the
# configs' region maps, and bad options that must fail with a message naming the option or file.
BIN="$1"
SRC="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
status=0
D="$SRC/tests/data"

expect_ok() {  # expect_ok args...
  local out
  if ! out=$("$BIN" ingest "$@" 2>&1); then echo "FAIL: 'ingest $*' failed:"; echo "$out"; status=1; return; fi
  echo "ok: ingest $* -> $(tail -1 <<<"$out")"
}
source "$(dirname "$0")/../lib/expect.sh"

expect_ok --format npy --input "$D/zebrafish-fish6/timeseries_regions_fish6.npy" \
  --labels "$D/zebrafish-fish6/region_acronyms.npy" --region-map "$SRC/configs/real-zebrafish-regions.ini" \
  --sample-interval 0.909 --animal-id fish6 --normalise zscore --species zebrafish --atlas mapzebrain --out "$W/zf"
grep -q "^regions = telencephalon,diencephalon,mesencephalon,cerebellum,rhombencephalon,periphery$" "$W/zf/cohort.ini" \
  || { echo "FAIL: zebrafish cohort.ini regions"; cat "$W/zf/cohort.ini"; status=1; }
[ -f "$W/zf/fish6.h5" ] || { echo "FAIL: no fish6.h5"; status=1; }

expect_ok --format h5-array --input "$D/nap-rsfmri-aal2/nap_aal2_bold.h5" --dataset /bold \
  --region-map "$SRC/configs/real-fmri-lobes.ini" --sample-interval 2.0 --normalise zscore --out "$W/fmri"
n=$(grep -c "^animal = " "$W/fmri/cohort.ini")
[ "$n" = 11 ] || { echo "FAIL: fMRI cohort has $n animals, expected 11"; status=1; }

expect_error ingest --format      --format matlab --input x --out "$W/x"
expect_error ingest --format      --input x --out "$W/x"
expect_error ingest --input       --format npy --out "$W/x" --labels x --sample-interval 1
expect_error ingest --out         --format nwb --input x.nwb
expect_error ingest --normalise   --format nwb --input x.nwb --out "$W/x" --normalise median
expect_error ingest --trials      --format nwb --input x.nwb --out "$W/x" --trials sum
expect_error ingest --bin-width   --format nwb --input x.nwb --out "$W/x" --bin-width 0
expect_error ingest --smooth-kernel --format nwb --input x.nwb --out "$W/x" --smooth-kernel box
expect_error ingest --labels      --format npy --input x.npy --out "$W/x" --sample-interval 1
expect_error ingest --sample-interval --format npy --input x.npy --out "$W/x" --labels l.txt
expect_error ingest --layout      --format npy --input x.npy --out "$W/x" --labels l.txt --sample-interval 1 --layout rows
expect_error ingest --dataset     --format h5-array --input x.h5 --out "$W/x"
expect_error ingest --bin-widht   --format nwb --input x.nwb --out "$W/x" --bin-widht 1
expect_error ingest "$W/none.nwb" --format nwb --input "$W/none.nwb" --out "$W/x"
expect_error ingest "timeseries_regions_fish6.npy" --format npy --input "$D/zebrafish-fish6/timeseries_regions_fish6.npy" \
  --labels "$D/zebrafish-fish6/region_acronyms.npy" --sample-interval 1 --layout samples-by-units --out "$W/x"
# A lab ingesting mice one at a time, each with its own labels: the cohort grows (region list the
# union), an id already there from another input is refused, and --labels once per --input works.
/usr/bin/python3 - "$W" <<'PYEOF'
import numpy as np, sys
w = sys.argv[1]
rng = np.random.default_rng(1)
for name, regs in (("m1", ["A", "B"]), ("m2", ["B", "C"]), ("m3", ["A", "C"])):
    np.save("%s/%s.npy" % (w, name), rng.standard_normal((6, 50)))
    open("%s/%s.labels" % (w, name), "w").write("\n".join(regs[i % 2] for i in range(6)) + "\n")
PYEOF
expect_ok --format npy --input "$W/m1.npy" --labels "$W/m1.labels" --sample-interval 0.1 --out "$W/lab"
expect_ok --format npy --input "$W/m2.npy" --labels "$W/m2.labels" --sample-interval 0.1 --out "$W/lab"
[ "$(grep -c '^animal = ' "$W/lab/cohort.ini")" = 2 ] || { echo "FAIL: the second ingest rewrote the cohort"; cat "$W/lab/cohort.ini"; status=1; }
grep -q "^regions = A,B,C$" "$W/lab/cohort.ini" || { echo "FAIL: regions are not the union"; cat "$W/lab/cohort.ini"; status=1; }
cp "$W/m3.npy" "$W/m1x.npy"
expect_error ingest "animal id 'm1' is already in cohort" --format npy --input "$W/m1x.npy" --animal-id m1 \
  --labels "$W/m3.labels" --sample-interval 0.1 --out "$W/lab"
expect_ok --format npy --input "$W/m1.npy" --labels "$W/m1.labels" --sample-interval 0.1 --out "$W/lab"   # again: replaces
expect_ok --format npy --input "$W/m1.npy" --input "$W/m3.npy" --labels "$W/m1.labels" --labels "$W/m3.labels" \
  --sample-interval 0.1 --out "$W/two"
[ "$(grep -c '^animal = ' "$W/two/cohort.ini")" = 2 ] || { echo "FAIL: per-input labels"; cat "$W/two/cohort.ini"; status=1; }
expect_error ingest "option --labels: given 2 times for 3" --format npy --input "$W/m1.npy" --input "$W/m2.npy" \
  --input "$W/m3.npy" --labels "$W/m1.labels" --labels "$W/m3.labels" --sample-interval 0.1 --out "$W/three"
# At 2 ranks the same errors come back once, with no hang.
if command -v mpirun >/dev/null; then
  out=$(timeout 60 mpirun -n 2 --oversubscribe "$BIN" ingest --format nwb --input "$W/none.nwb" --out "$W/x" 2>&1); code=$?
  if [ $code -eq 0 ] || ! grep -q "none.nwb" <<<"$out"; then echo "FAIL: 2-rank error ($code):"; echo "$out"; status=1;
  else echo "ok: 2 ranks -> $(grep none.nwb <<<"$out" | head -1)"; fi
fi
exit $status
