#!/usr/bin/env python3
"""The modes stage on the simulator's truth, over seeds (issue #14, "from the truth").

For every seed: simulate a cohort (the demo's shape unless told), run `cohortnet modes --source
truth` on each summary asked for (gains, rms, normalised, ...), and score the result against
truth/cohort.h5:/modes: K chosen, mean matched cosine over the true shared modes (Hungarian on
cosine; a true mode left unmatched counts 0), and how many true shared modes are matched to a
recovered mode called conserved. One line per (seed, summary), then the totals.

  /usr/bin/python3 bench/modes/truth_study.py --seeds 1-10 --summaries gains,rms \
      --work /tmp/truth-study [--ranks 2] [--sim "--animals 8 --units-per-region 40"] [--modes "--k-max 6"]

Needs build/bin/cohortnet and h5py. The work folder keeps every cohort and result (delete it after).
"""
import argparse
import itertools
import os
import shlex
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def seeds_of(text):
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def match(A, B):
    """Best one-to-one assignment of rows of A (recovered) to rows of B (true) by cosine.
    Returns {true index: (recovered index, cosine)}."""
    def unit(X):
        n = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(n > 0, n, 1)
    C = unit(A) @ unit(B).T
    best, pairs = -np.inf, []
    small, large = (C.shape[0], C.shape[1])
    if small <= large:
        for cols in itertools.permutations(range(large), small):
            v = C[np.arange(small), cols].sum()
            if v > best:
                best, pairs = v, list(zip(range(small), cols))
    else:
        for rows in itertools.permutations(range(small), large):
            v = C[rows, np.arange(large)].sum()
            if v > best:
                best, pairs = v, list(zip(rows, range(large)))
    return {int(j): (int(i), float(C[i, j])) for i, j in pairs}


def score(modes_h5, truth_h5):
    with h5py.File(truth_h5, "r") as f:
        true = f["modes"][()]
        tregions = [x.decode() if isinstance(x, bytes) else x for x in f["region_names"][()]]
        individual = int(f.attrs.get("individual_mode", -1))
    with h5py.File(modes_h5, "r") as f:
        K = int(f.attrs["K"])
        regions = [x.decode() if isinstance(x, bytes) else x for x in f["region_names"][()]]
        rec = f["modes"][()].reshape(K, len(regions), len(regions))
        self_pairs = int(f.attrs.get("self_pairs", 0))
        conserved = f["mode_test/conserved"][()] if "mode_test/conserved" in f else np.zeros(K, int)
    idx = [tregions.index(r) for r in regions]
    T = np.zeros((true.shape[0], len(regions), len(regions)))
    for q, iq in enumerate(idx):
        for s, js in enumerate(idx):
            if self_pairs or q != s:
                T[:, q, s] = true[:, iq, js]
    m = match(rec.reshape(K, -1), T.reshape(T.shape[0], -1))
    shared = [j for j in range(T.shape[0]) if j != individual]
    cos = [m[j][1] if j in m else 0.0 for j in shared]
    cons = sum(1 for j in shared if j in m and conserved[m[j][0]])
    ind = None
    if individual >= 0:
        ind = bool(individual in m and conserved[m[individual][0]])
    return K, float(np.mean(cos)), cos, cons, len(shared), ind


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    return r.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--summaries", default="gains,rms")
    ap.add_argument("--work", default="/tmp/truth-study")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--sim", default="--animals 8 --regions 6 --modes 4 --units-per-region 40 --samples 1201")
    ap.add_argument("--modes", default="--k-max 6")
    ap.add_argument("--reuse", action="store_true", help="reuse cohorts already simulated in --work")
    a = ap.parse_args()
    exe = os.path.join(ROOT, "build", "bin", "cohortnet")
    mpi = ["mpirun", "--oversubscribe", "-n", str(a.ranks)]
    os.makedirs(a.work, exist_ok=True)
    log = os.path.join(a.work, "log.txt")
    totals = {}
    print("seed summary K mean_cos per-true-mode-cos conserved/shared individual_conserved stage_truth_check")
    for seed in seeds_of(a.seeds):
        cohort = os.path.join(a.work, "seed%d" % seed)
        if not (a.reuse and os.path.exists(os.path.join(cohort, "truth", "cohort.h5"))):
            rc = run(mpi + [exe, "simulate", "--preset", "cohort", "--seed", str(seed), "--out", cohort]
                     + shlex.split(a.sim), log)
            if rc:
                sys.exit("simulate failed for seed %d (see %s)" % (seed, log))
        for s in a.summaries.split(","):
            out = os.path.join(cohort, "modes-" + s)
            rc = run(mpi + [exe, "modes", "--input", cohort, "--source", "truth", "--summary", s, "--out", out,
                            "--seed", "1"] + shlex.split(a.modes), log)
            if rc not in (0, 3):  # 3: finished, but the stage's own truth check failed (scored here too)
                print("%d %s modes failed rc %d (see %s)" % (seed, s, rc, log))
                continue
            with h5py.File(os.path.join(out, "modes.h5"), "r") as f:
                check = f.attrs.get("truth_check", b"none")
                check = check.decode() if isinstance(check, bytes) else str(check)
            K, mc, cos, cons, ns, ind = score(os.path.join(out, "modes.h5"), os.path.join(cohort, "truth", "cohort.h5"))
            t = totals.setdefault(s, {"n": 0, "k4": 0, "cons3": 0, "cos": [], "ind": 0})
            t["n"] += 1
            t["k4"] += K == ns + (0 if ind is None else 1)
            t["cons3"] += cons >= ns - 1
            t["cos"].append(mc)
            t["ind"] += bool(ind)
            t["pass"] = t.get("pass", 0) + (check == "pass")
            print("%d %s %d %.3f %s %d/%d %s %s" % (seed, s, K, mc, " ".join("%.2f" % c for c in cos), cons, ns,
                                                     "-" if ind is None else ind, check), flush=True)
    for s, t in totals.items():
        print("TOTAL %s: K right %d/%d, >= all-but-one shared conserved %d/%d, mean cosine %.3f (min %.3f), "
              "individual conserved %d, the stage's truth check passed %d/%d" % (
                  s, t["k4"], t["n"], t["cons3"], t["n"], np.mean(t["cos"]), np.min(t["cos"]), t["ind"],
                  t["pass"], t["n"]))


if __name__ == "__main__":
    main()
