#!/usr/bin/env python3
"""How well can any fit of this model predict a simulated animal's held-out samples? (docs/fit.md)

Issue 15 asks for held-out pVar >= 0.95 at the automatic horizon on a simulated cohort. This
study separates what the data allow from what cohortnet's fit does, on a folder written by
`cohortnet simulate --preset cohort` (reads DIR/AID.h5 and DIR/truth/AID.h5):

  oracle gated    the simulator's own J, gains and external input, integrated like the fit
                  (forward Euler, --substeps per sample): the model class can reach this;
  oracle fixed    the true J with each pathway's gain fixed at its training mean: the best a
                  fixed-J model (cohortnet's default) is likely to do on gated data;
  ridge fixed     the fit's regression start in numpy (implied currents, region prior p0 and
                  ratio, dt-factor 1 at tau): what `fit --runs-train 0` computes;
  ridge gains     the same regression with the TRUE gains multiplying each pathway's regressors:
                  an upper bound for any fitted-gain model (`fit --gains inputs`).

The held-out part is the last HOLDOUT samples (the fit's `end` split: the last third); training
uses the TRAIN samples before it (default: all the others; with a longer simulation, `--train
800,1600,...` keeps the same held-out block and varies the training length). The state is reset
to the data at the held-out start and every K samples; pVar over the non-reset samples, as the
fit reports it.

    python3 bench/heldout_ceiling.py DIR --animal a00 --horizon 67 [--tau 0.1] [--train 800]
        [--holdout 400] [--p0 1e2,1e3,1e4] [--ratio 0.01,0.1,1]
"""
import argparse

import h5py
import numpy as np


def load(folder, aid):
    with h5py.File(f"{folder}/{aid}.h5") as f, h5py.File(f"{folder}/truth/{aid}.h5") as t:
        A, U, reg = f["activity"][()], f["inputs"][()], f["unit_region"][()]
        J, G, ext = t["J"][()], t["gains"][()], t["external"][()]
    D = np.clip(A / np.abs(A).max(), -0.999, 0.999)  # the fit's --normalise global
    return D, U, reg, J, G, ext


def heldout_pvar(D, step, first, K):
    """Reset to the data at `first` and every K samples after; pVar over the non-reset samples."""
    N, T = D.shape
    R, scored = np.zeros_like(D), np.zeros(T, bool)
    for t0 in range(first, T, K):
        x = np.arctanh(D[:, t0])
        for t in range(t0 + 1, min(t0 + K, T)):
            x = step(x, t - 1)
            R[:, t], scored[t] = np.tanh(x), True
    d, r = D[:, scored], R[:, scored]
    return 1 - ((d - r) ** 2).sum() / (d.size * d.var())


def ridge(D, U, reg, G, samples, tau, dt, p0, ratio, gated):
    """Rows of [J W_in] per target region from the implied currents (primal normal equations)."""
    N, M = D.shape[0], G.shape[0]
    X0, X1 = np.arctanh(D[:, samples]), np.arctanh(D[:, samples + 1])
    Y = X0 + tau / dt * (X1 - X0)
    W = np.zeros((N, N + U.shape[0]))
    for q in range(M):
        rows = np.where(reg == q)[0]
        gain = G[q][reg][:, samples] if gated else 1.0
        Z = np.vstack([D[:, samples] * gain, U[:, samples]])
        s = np.sqrt(p0 * np.where(np.r_[reg == q, np.ones(U.shape[0], bool)], 1.0, ratio))
        C = (s[:, None] * (Z @ Z.T)) * s[None, :] + np.eye(len(s))
        W[rows] = (s[:, None] * np.linalg.solve(C, s[:, None] * (Z @ Y[rows].T))).T
    return W


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--animal", default="a00")
    ap.add_argument("--horizon", type=int, required=True, help="K (the fit's log prints its automatic choice)")
    ap.add_argument("--tau", type=float, default=0.1, help="the model's tau for the ridge fits (s)")
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--substeps", type=int, default=5, help="Euler substeps per sample of the oracles")
    ap.add_argument("--holdout", type=int, default=None, help="held-out samples at the end (default T/3)")
    ap.add_argument("--train", default=None, help="training lengths before the held-out block (default: all)")
    ap.add_argument("--p0", default="1e2,1e3,1e4")
    ap.add_argument("--ratio", default="0.01,0.1,1")
    a = ap.parse_args()

    D, U, reg, J, G, ext = load(a.folder, a.animal)
    T = D.shape[1]
    hold = a.holdout or T // 3
    trains = [int(v) for v in a.train.split(",")] if a.train else [T - hold]
    print(f"# {a.folder}/{a.animal}: N {D.shape[0]}, T {T}, held out the last {hold}, K {a.horizon}")
    for ntr in trains:
        keep = np.r_[np.arange(ntr), np.arange(T - hold, T)]  # the training samples, then the held-out block
        Dk, Uk, Gk, Ek = D[:, keep], U[:, keep], G[:, :, keep], ext[:, keep]

        def euler(Jfor):
            h = a.dt / a.substeps / 0.1  # the simulator's tau (0.1 s, the cohort preset's)

            def step(x, t):
                Je = Jfor(t)
                for _ in range(a.substeps):
                    x = x + h * (-x + Je @ np.tanh(x) + Ek[:, t])
                return x
            return step

        gated_J = lambda t: J * Gk[:, :, t][reg][:, reg]
        mean_gain = Gk[:, :, :ntr].mean(2)
        fixed_J = J * mean_gain[reg][:, reg]
        print(f"train {ntr}: oracle gated {heldout_pvar(Dk, euler(gated_J), ntr, a.horizon):.4f}, "
              f"oracle fixed (mean gains) {heldout_pvar(Dk, euler(lambda t: fixed_J), ntr, a.horizon):.4f}")
        samples = np.arange(ntr - 1)
        for p0 in [float(v) for v in a.p0.split(",")]:
            for ratio in [float(v) for v in a.ratio.split(",")]:
                out = []
                for gated in (False, True):
                    W = ridge(Dk, Uk, reg, Gk, samples, a.tau, a.dt, p0, ratio, gated)
                    Jf, Wu = W[:, :D.shape[0]], W[:, D.shape[0]:]

                    def step(x, t, Jf=Jf, Wu=Wu, gated=gated):
                        Je = Jf * Gk[:, :, t][reg][:, reg] if gated else Jf
                        return x + a.dt / a.tau * (-x + Je @ np.tanh(x) + Wu @ Uk[:, t])
                    out.append(heldout_pvar(Dk, step, ntr, a.horizon))
                print(f"  ridge p0 {p0:g} ratio {ratio:g}: fixed J {out[0]:.4f}, true gains {out[1]:.4f}")


if __name__ == "__main__":
    main()
