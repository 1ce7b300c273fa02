#!/usr/bin/env python3
"""What a fixed-weight model can recover at best from a simulated animal (docs/currents.md).

Reads a folder written by `cohortnet simulate` (one animal, a00, with truth/) and fits each target
region's rows of J by ridge regression, directly (normal equations), on:
  true:    the true input current of every unit (J_eff(t) r(t) + external, from truth/), or
  implied: the current the rates imply, x + tau dx/dt with x = atanh(rates) (what
           `cohortnet fit --start regression` regresses on),
against the true rates (and the animal's /inputs with --inputs). Penalty lam_in for a row's own
region and the inputs, lam_out for other regions. Prints, per setting: the median correlation over
time of inferred and true inter-region current at the units that truly receive it (r), and the AUC
of present vs absent inter-region pathways scored by the inferred RMS current (cohort preset).

    python3 bench/regression_ceiling.py DIR [DIR ...] [--target true|implied] [--inputs]
                                        [--normalise none|global] [--lam-in 0.01] [--lam-out 0.3,1,3]
"""
import argparse

import h5py
import numpy as np


def auc(score, label):
    pos, neg = score[label], score[~label]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])


def load(folder):
    with h5py.File(folder + "/a00.h5") as f, h5py.File(folder + "/truth/a00.h5") as t:
        return dict(R=t["rates"][()], J=t["J"][()], G=t["gains"][()], U=t["external"][()],
                    lab=t["unit_region"][()], coupled=t["pair_coupled"][()].astype(bool),
                    inputs=f["inputs"][()] if "inputs" in f else None,
                    dt=float(f.attrs["sample_interval"]) if "sample_interval" in f.attrs else 0.01)


def evaluate(a, target, use_inputs, normalise, lam_in, lam_out, tau):
    R, lab, G, J = a["R"], a["lab"], a["G"], a["J"]
    M, (N, T) = G.shape[0], R.shape
    Z = R / R.max() if normalise == "global" else R
    if target == "true":
        I = a["U"].copy()
        for q in range(M):
            for s in range(M):
                iq, js = lab == q, lab == s
                I[iq] += G[q, s][None, :] * (J[np.ix_(iq, js)] @ R[js])
        Zr = Z
    else:
        X = np.arctanh(np.clip(Z, -0.999, 0.999))
        I = X[:, :-1] + tau * np.diff(X, axis=1) / a["dt"]
        Zr = Z[:, :-1]
    T2 = Zr.shape[1]
    regressors = np.vstack([Zr, a["inputs"][:, :T2]]) if use_inputs and a["inputs"] is not None else Zr
    n_in = regressors.shape[0] - N
    gram = regressors @ regressors.T
    rs, score = [], np.zeros((M, M))
    for q in range(M):
        iq = np.where(lab == q)[0]
        pen = np.concatenate([np.where(lab == q, lam_in, lam_out), np.full(n_in, lam_in)])
        W = np.linalg.solve(gram + np.diag(pen), regressors @ I[iq].T).T
        for s in range(M):
            js = np.where(lab == s)[0]
            C = W[:, js] @ R[js, :T2]
            score[q, s] = np.sqrt((C ** 2).mean())
            if s == q:
                continue
            Jt = J[np.ix_(iq, js)]
            receive = np.where(np.abs(Jt).sum(1) > 0)[0]
            if len(receive):
                Ct = G[q, s][None, :T2] * (Jt @ R[js, :T2])
                rs.append(np.median([np.corrcoef(C[i], Ct[i])[0, 1] for i in receive]))
    off = ~np.eye(M, dtype=bool)
    return (np.median(rs) if rs else float("nan")), score[off], a["coupled"][off]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--target", choices=["true", "implied"], default="implied")
    ap.add_argument("--inputs", action="store_true")
    ap.add_argument("--normalise", choices=["none", "global"], default="none")
    ap.add_argument("--lam-in", type=float, default=0.01)
    ap.add_argument("--lam-out", default="0.3,1,3")
    ap.add_argument("--tau", type=float, default=0.1)
    o = ap.parse_args()
    animals = [load(f) for f in o.folders]
    for lam_out in [float(v) for v in o.lam_out.split(",")]:
        res = [evaluate(a, o.target, o.inputs, o.normalise, o.lam_in, lam_out, o.tau) for a in animals]
        pooled = auc(np.concatenate([r[1] for r in res]), np.concatenate([r[2] for r in res]))
        print("target %-7s inputs %-3s normalise %-6s lam_in %g lam_out %-5g  r_unit_inter %.3f  AUC %.3f  (per animal: %s)"
              % (o.target, "yes" if o.inputs else "no", o.normalise, o.lam_in, lam_out,
                 np.median([r[0] for r in res]), pooled,
                 " ".join("%.2f" % auc(r[1], r[2]) for r in res)))


if __name__ == "__main__":
    main()
