#!/bin/bash
# `cohortnet validate` on a tiny setting: the text table and the HDF5 file are written, with a
# summary line per (case, method); bad options are named.
BIN="$1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
die() { echo "FAIL: $*"; cat "$W"/*.log 2>/dev/null | tail -30; exit 1; }
"$BIN" validate --out "$W/table.txt" --cases three-region:0.2,cohort --seeds 2 --units-per-region 8 \
  --regions 4 --cohort-units-per-region 8 --samples 60 --runs-train 2 > "$W/run.log" 2>&1 || die "validate failed"
[ -f "$W/table.txt" ] || die "no table"
[ -f "$W/table.txt.h5" ] || die "no HDF5 table"
# Default methods: the reference (shared@random), the region prior from the random J0, and the
# default (block prior, regression start), with and without inputs.
for m in shared@random region@random block; do
  grep -qE "^three-region:0.2 +$m +2 " "$W/table.txt" || die "no summary line for three-region/$m"
  grep -qE "^cohort:0.3 +$m +2 " "$W/table.txt" || die "no summary line for cohort/$m"
done
grep -qE "^cohort:0.3 +block\+inputs +2 " "$W/table.txt" || die "no summary line for cohort/block+inputs"
grep -qE "^three-region:0.2 +block\+inputs" "$W/table.txt" && die "block+inputs run on the three-region preset (no inputs)"
h5dump -A "$W/table.txt.h5" | grep -q "auc_pooled" || die "HDF5 summary attributes missing"
# An --out that cannot take the table fails before any fit, naming --out.
touch "$W/afile"
"$BIN" validate --out "$W/afile/table.txt" --cases three-region:0.2 --seeds 1 --units-per-region 8 --samples 60 \
  --runs-train 2 > "$W/unwritable.log" 2>&1 && die "validate into an unwritable --out succeeded"
grep -q "option --out: cannot create folder $W/afile" "$W/unwritable.log" || die "unwritable --out not named"
grep -q "run 1" "$W/unwritable.log" && die "validate fitted before finding --out unwritable"
# A case with its own link pattern (preset:STRENGTH:LINKS), and the ratio at the receiving units.
"$BIN" validate --out "$W/links.txt" --cases three-region:0.2:random --methods region --seeds 1 --units-per-region 8 \
  --samples 60 --runs-train 2 > "$W/links.log" 2>&1 || die "validate with :random failed"
grep -qE "^three-region:0.2:random +region +1 " "$W/links.txt" || die "no summary line for three-region:0.2:random"
grep -q "ratio_conn" "$W/links.txt" || die "no ratio_conn column"
# The cohort with constant gains (preset:STRENGTH:LINKS:GATING, links left at the preset's), and a
# method with its start given.
"$BIN" validate --out "$W/gate.txt" --cases cohort:0.3::constant --methods region+inputs@random --seeds 1 \
  --regions 4 --cohort-units-per-region 8 --samples 60 --runs-train 2 > "$W/gate.log" 2>&1 || die "validate with :constant failed"
grep -qE "^cohort:0.3:constant +region\+inputs@random +1 " "$W/gate.txt" || die "no summary line for cohort:0.3:constant"
# Gating that lags the drives (:lagged, the gains --gating-lag behind /inputs), recorded in the header.
"$BIN" validate --out "$W/lag.txt" --cases cohort:0.3::lagged --methods block+inputs --seeds 1 --gating-lag 0.5 \
  --regions 3 --cohort-units-per-region 8 --samples 60 --runs-train 1 > "$W/lag.log" 2>&1 || die "validate with :lagged failed"
grep -qE "^cohort:0.3:lagged +block\+inputs +1 " "$W/lag.txt" || die "no summary line for cohort:0.3:lagged"
grep -q "gating-lag = 0.5" "$W/lag.txt" || die "the table's header does not record --gating-lag"
"$BIN" validate --out "$W/x.txt" --cases cohort:0.3::sometimes > "$W/bad4.log" 2>&1 && die "gating 'sometimes' accepted"
grep -q -- "--gating" "$W/bad4.log" || die "error does not name --gating"
"$BIN" validate --out "$W/x.txt" --cases three-region:0.2::constant > "$W/bad5.log" 2>&1 && die "gating on three-region accepted"
grep -q -- "--cases" "$W/bad5.log" || die "error does not name --cases"
"$BIN" validate --out "$W/x.txt" --normalise median > "$W/bad7.log" 2>&1 && die "--normalise median accepted"
grep -q -- "--normalise" "$W/bad7.log" || die "error does not name --normalise"
"$BIN" validate --out "$W/x.txt" --methods region@zero > "$W/bad6.log" 2>&1 && die "--methods region@zero accepted"
grep -q -- "--start" "$W/bad6.log" || die "error does not name --start"
"$BIN" validate --out "$W/x.txt" --cases three-region:0.2:sideways > "$W/bad3.log" 2>&1 && die "links 'sideways' accepted"
grep -q -- "--links" "$W/bad3.log" || die "error does not name --links"
"$BIN" validate --out "$W/x.txt" --seeds 0 > "$W/bad.log" 2>&1 && die "--seeds 0 accepted"
grep -q -- "--seeds" "$W/bad.log" || die "error does not name --seeds"
"$BIN" validate --out "$W/x.txt" --methods median > "$W/bad2.log" 2>&1 && die "--methods median accepted"
grep -q -- "--methods" "$W/bad2.log" || die "error does not name the option"
# Gated pathways (+gains: fit --gains inputs): the summary adds the share of targets whose gains
# were kept and the gains' r; the HDF5 file their per-run values.
"$BIN" validate --out "$W/gains.txt" --cases cohort --methods block+gains --seeds 1 --regions 3 \
  --cohort-units-per-region 8 --samples 401 --runs-train 1 > "$W/gains.log" 2>&1 || die "validate block+gains failed"
grep -qE "^cohort:0.3 +block\+gains +1 " "$W/gains.txt" || die "no summary line for cohort/block+gains"
grep -q "gains_r" "$W/gains.txt" || die "no gains_r column"
line=$(grep -E "^cohort:0.3 +block\+gains +1 " "$W/gains.txt" | tail -1)
kept=$(echo "$line" | awk '{print $(NF-2)}')
awk -v k="$kept" 'BEGIN { exit !(k >= 0 && k <= 1) }' || die "kept share '$kept' is not in [0, 1]: $line"
h5dump -A "$W/gains.txt.h5" | grep -q "gains_kept_fraction" || die "HDF5 gains attributes missing"
h5dump -H "$W/gains.txt.h5" | grep -q '"gains_kept"' || die "HDF5 /gains_kept missing"
"$BIN" validate --out "$W/x.txt" --methods region+gains > "$W/bad8.log" 2>&1 && die "region+gains accepted"
grep -q -- "+gains and +latentK need the block prior" "$W/bad8.log" || die "region+gains error does not say why"
"$BIN" validate --out "$W/x.txt" --methods region+latent3 > "$W/bad8b.log" 2>&1 && die "region+latent3 accepted"
grep -q -- "need the block prior" "$W/bad8b.log" || die "region+latent3 error does not say why"
"$BIN" validate --out "$W/x.txt" --methods block+latent > "$W/bad8c.log" 2>&1 && die "block+latent (no K) accepted"
grep -q -- "unknown method 'block+latent'" "$W/bad8c.log" || die "block+latent error does not name the method"
"$BIN" validate --out "$W/x.txt" --methods block+latent0 > "$W/bad8d.log" 2>&1 && die "block+latent0 accepted"
grep -q -- "latent:K needs K from 1 to 64" "$W/bad8d.log" || die "block+latent0 error does not say why"
"$BIN" validate --out "$W/x.txt" --methods block+gains --ensemble 2 > "$W/bad9.log" 2>&1 && die "gated ensemble accepted"
grep -q -- "--ensemble" "$W/bad9.log" || die "gated ensemble error does not name --ensemble"
"$BIN" validate --out "$W/x.txt" --input-smoothing fast > "$W/bad11.log" 2>&1 && die "--input-smoothing fast accepted"
grep -q -- "--input-smoothing" "$W/bad11.log" || die "bad --input-smoothing not named"
"$BIN" validate --out "$W/x.txt" --methods block+sideways > "$W/bad10.log" 2>&1 && die "block+sideways accepted"
grep -q -- "--methods" "$W/bad10.log" || die "block+sideways error does not name --methods"
echo "validate CLI: table, HDF5 and option errors OK"
