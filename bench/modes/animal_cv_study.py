#!/usr/bin/env python3
"""Why the animal-out K choice can miss a true mode (issue #14; docs/currents.md, "The K rule").

A small numpy re-implementation of `modes --k-cv animals` on a simulated cohort's TRUE pathways
(truth/<id>.h5: /gains x /pathway_strength, rms-scaled per animal, absent regions' rows masked):
for each animal a, W is fitted by masked HALS on the other animals (best of --starts), a's
activations are fitted by NNLS on its kept (pathway, block) pieces and its held-out pieces are
scored, as the stage does (blocks of 50 samples at the simulator's 10 ms, 10% held out, 3 masks).
Printed per K: the geometric-mean held-out error over animals, then the same with the TRUE modes
as W (what a perfect factorization would score), and the smallest matched cosine of each animal-out
W to the true modes before and after a sparsifying step (fit-preserving: a column loses as much of
another as keeps it non-negative, the activations take it, a short HALS polish; kept when the
objective stays within 1%).

  /usr/bin/python3 bench/modes/animal_cv_study.py COHORT_DIR [--ks 3,4] [--sub 5] [--starts 3]
  /usr/bin/python3 bench/modes/animal_cv_study.py COHORT_DIR --fits FITS_DIR --full [--ks 4]

COHORT_DIR holds truth/ (e.g. WORK/seed12/cohort of bench/modes/end_to_end.py). Not the stage's
code: its numbers are close to, not equal to, `/select_k/cv_error` (other starts and masks).
--fits: factor the fits' pathways (FITS_DIR/a*.h5: /gains x /pathway_strength, magnitudes, as the
demo's `--negative abs`) instead of the truth's; the true modes still come from COHORT_DIR.
--full: instead of the animal-out study, one fit on all animals (best of --starts) and the matched
cosines of its modes to the true modes (Hungarian) before and after the sparsifying step.
"""
import argparse
import glob

import h5py
import numpy as np
from scipy.optimize import linear_sum_assignment, nnls


def load(cohort, sub, fits=None):
    t = h5py.File(cohort + "/truth/cohort.h5", "r")
    names = [x.decode() if isinstance(x, bytes) else x for x in t["region_names"][:]]
    R = len(names)
    pairs = [(q, s) for q in range(R) for s in range(R) if q != s]
    Wt = np.array([[m[q, s] for q, s in pairs] for m in t["modes"][:]]).T
    Wt /= np.linalg.norm(Wt, axis=0)
    Xs = []
    for f in sorted(glob.glob((fits or cohort + "/truth") + "/a*.h5")):
        a = h5py.File(f, "r")
        an = [x.decode() if isinstance(x, bytes) else x for x in a["region_names"][:]]
        g, st = a["gains"][:, :, ::sub], a["pathway_strength"][:]
        X = np.full((len(pairs), g.shape[2]), np.nan)
        for p, (q, s) in enumerate(pairs):
            if names[q] in an and names[s] in an:
                qi, si = an.index(names[q]), an.index(names[s])
                X[p] = np.abs(g[qi, si] * st[qi, si])
        Xs.append(X / np.sqrt(np.nanmean(X ** 2)))
    return Xs, Wt


def hals(Xs, W, H, iters):
    """Masked HALS: rows absent in an animal (NaN) do not count. W columns kept at unit norm."""
    P, K = W.shape
    obs = [~np.isnan(X[:, 0]) for X in Xs]
    X0 = [np.nan_to_num(X) for X in Xs]
    for _ in range(iters):
        for i, X in enumerate(X0):
            Wo = W * obs[i][:, None]
            G, B = Wo.T @ Wo, Wo.T @ X
            for k in range(K):
                H[i][k] = np.maximum(0, H[i][k] + (B[k] - G[k] @ H[i]) / max(G[k, k], 1e-12))
        num, GG = np.zeros((P, K)), np.zeros((P, K, K))
        for i, X in enumerate(X0):
            GG += obs[i][:, None, None] * (H[i] @ H[i].T)[None]
            num += obs[i][:, None] * (X @ H[i].T)
        for k in range(K):
            W[:, k] = np.maximum(0, W[:, k] + (num[:, k] - np.einsum("pj,pj->p", GG[:, k, :], W))
                                 / np.maximum(GG[:, k, k], 1e-12))
        n = np.linalg.norm(W, axis=0) + 1e-12
        W /= n
        for h in H:
            h *= n[:, None]
    return W, H


def objective(Xs, W, H):
    return sum(np.nansum((X - W @ h) ** 2) for X, h in zip(Xs, H))


def fit(Xs, K, rng, starts, iters=300):
    best = None
    for _ in range(starts):
        W, H = hals(Xs, rng.random((Xs[0].shape[0], K)), [rng.random((K, X.shape[1])) for X in Xs], iters)
        o = objective(Xs, W, H)
        if best is None or o < best[2]:
            best = (W, H, o)
    return best


def sparsify(Xs, W, H, eps=0.05, tol=0.01):
    base, K = objective(Xs, W, H), W.shape[1]
    W, H = W.copy(), [h.copy() for h in H]
    for _ in range(3 * K):
        changed = False
        for i in range(K):
            for j in range(K):
                wj = W[:, j]
                sup = wj > 0.1 * wj.max()
                a = np.min((W[sup, i] + eps) / wj[sup]) if i != j else 0
                if a < 0.05:
                    continue
                W2 = W.copy()
                W2[:, i] = np.maximum(0, W[:, i] - a * wj)
                if np.linalg.norm(W2[:, i]) < 0.2:
                    continue
                H2 = [h.copy() for h in H]
                for h in H2:
                    h[j] += a * h[i]
                W3, H3 = hals(Xs, W2, H2, 50)
                if objective(Xs, W3, H3) <= base * (1 + tol) and np.abs(W3).sum() < np.abs(W).sum() - 1e-3:
                    W, H, changed = W3, H3, True
        if not changed:
            break
    return W, H


def heldout(X, W, block, ridge=0.01, masks=3):
    P, K = W.shape
    e = x = 0.0
    for m in range(masks):
        rng = np.random.default_rng(1000 + m)
        for b0 in range(0, X.shape[1], block):
            obs = ~np.isnan(X[:, b0])
            hold = obs & (rng.random(P) < 0.1)
            keep = obs & ~hold
            if not keep.any() or not hold.any():
                continue
            A = np.vstack([W[keep], np.sqrt(ridge) * np.eye(K)])
            Xb = X[keep, b0:b0 + block]
            Hb = np.array([nnls(A, np.concatenate([Xb[:, j], np.zeros(K)]))[0] for j in range(Xb.shape[1])]).T
            r = X[hold, b0:b0 + block] - W[hold] @ Hb
            e += np.sum(r ** 2)
            x += np.sum(X[hold, b0:b0 + block] ** 2)
    return e / x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort")
    ap.add_argument("--ks", default="3,4")
    ap.add_argument("--sub", type=int, default=5, help="keep every sub-th sample (speed)")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--fits", help="factor these fits' pathways (a*.h5) instead of the truth's")
    ap.add_argument("--full", action="store_true", help="one fit on all animals, cosines before/after sparsifying")
    a = ap.parse_args()
    Xs, Wt = load(a.cohort, a.sub, a.fits)
    if a.full:
        def matched(W):
            C = Wt.T @ (W / np.linalg.norm(W, axis=0))
            r, c = linear_sum_assignment(-C)
            cos = np.zeros(Wt.shape[1])
            cos[r] = C[r, c]
            return cos
        for K in [int(k) for k in a.ks.split(",")]:
            W, H, o = fit(Xs, K, np.random.default_rng(0), max(a.starts, 5))
            Ws, Hs = sparsify(Xs, W, H)
            c, cs = matched(W), matched(Ws)
            print("K = %d: matched cosines %s (mean %.3f); sparsified %s (mean %.3f); objective %.1f -> %.1f" %
                  (K, np.round(c, 2), c.mean(), np.round(cs, 2), cs.mean(), o, objective(Xs, Ws, Hs)), flush=True)
        return
    block = max(2, 50 // a.sub)
    geo = lambda v: float(np.exp(np.mean(np.log(v))))
    e_true = [heldout(X, Wt, block) for X in Xs]
    print("true modes as W: held-out error %.4f (geomean), per animal %s" % (geo(e_true), np.round(e_true, 3)))
    for K in [int(k) for k in a.ks.split(",")]:
        e, e_sp, c, c_sp = [], [], [], []
        for i in range(len(Xs)):
            rest = [X for j, X in enumerate(Xs) if j != i]
            W, H, _ = fit(rest, K, np.random.default_rng(i), a.starts)
            Ws, _ = sparsify(rest, W, H)
            e.append(heldout(Xs[i], W, block))
            e_sp.append(heldout(Xs[i], Ws, block))
            c.append(np.max(np.abs(Wt.T @ W), axis=1).min())
            c_sp.append(np.max(np.abs(Wt.T @ Ws), axis=1).min())
        print("K = %d: held-out error %.4f (sparsified %.4f); smallest matched cosine to a true mode, median over "
              "animal-out fits %.2f (sparsified %.2f); per animal %s" %
              (K, geo(e), geo(e_sp), np.median(c), np.median(c_sp), np.round(e, 3)), flush=True)


if __name__ == "__main__":
    main()
