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
# At 2 ranks the same errors come back once, with no hang.
if command -v mpirun >/dev/null; then
  out=$(timeout 60 mpirun -n 2 --oversubscribe "$BIN" ingest --format nwb --input "$W/none.nwb" --out "$W/x" 2>&1); code=$?
  if [ $code -eq 0 ] || ! grep -q "none.nwb" <<<"$out"; then echo "FAIL: 2-rank error ($code):"; echo "$out"; status=1;
  else echo "ok: 2 ranks -> $(grep none.nwb <<<"$out" | head -1)"; fi
fi
exit $status
