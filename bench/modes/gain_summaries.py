#!/usr/bin/env python3
"""Which summary of fitted pathway gains lets `cohortnet modes` recover a simulated cohort's modes?

A study for issue 14 (docs/currents.md, "Gated pathways"), not a test. Input: a results folder of a
simulated cohort fitted with `fit --gains inputs` (RESULTS/fits/*.h5, and the cohort folder with
truth/). For each variant the fits' /gains are replaced in copies (WORK/VARIANT/fits) by the
variant's summary, `cohortnet modes --summary gains` runs on them with the stage's own truth check
(docs/modes.md), and one line per variant is printed: K, matched cosine per true mode, conserved.

Variants (g: the fitted gains, unit mean square per pair; a target whose gains the fit did not
keep has g = 1 and stays masked as the modes stage does):
  raw          g as the fit writes it
  rect         max(g - mean_t g, 0): the modulation above the pair's mean
  relevance    rect on pairs whose learnt prior factor (/gains_model/prior) exceeds the fit's
               start-ratio (eta_QS > 0: the fit made the pathway more relevant), 0 elsewhere
  oracle       rect on the truly coupled pairs only (truth /pair_coupled; not available on data)
  truth-norm   the TRUE gains as the fit represents them (unit mean square per coupled pair,
               1 on uncoupled pairs, every target kept): what perfect fitted gains would give
  truth-rect   max(truth-norm - mean_t, 0)
Usage: gain_summaries.py RESULTS COHORT WORK [--variants a,b] [--bin cohortnet] [--ranks 2]
"""
import argparse
import glob
import os
import shutil
import subprocess

import h5py
import numpy as np


def names(ds):
    return [x.decode() if isinstance(x, bytes) else str(x) for x in ds[:]]


def transform(variant, f, truth):
    g = f["gains"][:]
    m = g.shape[0]
    if variant == "raw":
        return g
    idx = [names(truth["region_names"]).index(r) for r in names(f["region_names"])]
    coupled = truth["pair_coupled"][:][np.ix_(idx, idx)] > 0
    if variant.startswith("truth"):
        tg = truth["gains"][:][np.ix_(idx, idx)]
        g = np.ones_like(g)
        for q in range(m):
            for s in range(m):
                if q != s and coupled[q, s]:
                    g[q, s] = tg[q, s] / np.sqrt(np.mean(tg[q, s] ** 2))
        f["gains_model/kept"][...] = 1
        return g if variant == "truth-norm" else np.maximum(g - g.mean(axis=2, keepdims=True), 0)
    rect = np.maximum(g - g.mean(axis=2, keepdims=True), 0)
    if variant == "rect":
        return rect
    if variant == "relevance":
        keep = f["gains_model/prior"][:] > float(f.attrs["start_ratio"])
        return rect * keep[:, :, None]
    if variant == "oracle":
        return rect * coupled[:, :, None]
    raise SystemExit(f"unknown variant {variant}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("cohort")
    ap.add_argument("work")
    ap.add_argument("--variants", default="raw,rect,relevance,oracle,truth-norm,truth-rect")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../build/bin/cohortnet"))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--modes-args", default="--k auto --k-max 6 --seed 1")
    a = ap.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
    for v in a.variants.split(","):
        out = os.path.join(a.work, v)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(out, "fits"))
        for fn in sorted(glob.glob(os.path.join(a.results, "fits", "*.h5"))):
            dst = os.path.join(out, "fits", os.path.basename(fn))
            shutil.copy(fn, dst)
            st = fn[:-3] + ".status.json"
            if os.path.exists(st):
                shutil.copy(st, os.path.join(out, "fits"))
            aid = os.path.basename(fn)[:-3]
            with h5py.File(dst, "r+") as f, h5py.File(os.path.join(a.cohort, "truth", aid + ".h5"), "r") as t:
                f["gains"][...] = transform(v, f, t)
        cmd = ["mpirun", "-n", str(a.ranks), a.bin, "modes", "--input", out, "--cohort", a.cohort, "--out", out,
               "--summary", "gains"] + a.modes_args.split()
        with open(os.path.join(out, "modes.log"), "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        summary = os.path.join(out, "modes_summary.txt")
        last = open(summary).read().strip().splitlines()[-1] if os.path.exists(summary) else "(no summary: see modes.log)"
        print(f"{v:11s} exit {rc}: {last.split('): ', 1)[-1]}", flush=True)


if __name__ == "__main__":
    main()
