#!/usr/bin/env python3
"""The plain per-sample numpy loop of CURBD training (../shared/spec/curbd.md, step 5), timed here.

Written from the spec, not from the reference's code: per RNN step r = tanh(x), x += dt (-x + J r +
noise) / tau; per data sample k = P r, c = 1 / (1 + r.k), P -= c k k^T, J -= c e k^T with numpy
outer products (N x N temporaries, as the reference does). One training run is T = 1201 samples at
dtFactor 5 (6000 RNN steps, 1200 learning steps); the first `--cycles` learning cycles are timed and
scaled to the run (every cycle does the same work). Prints one line per N:
  reference_loop N=<N> threads=<OPENBLAS_NUM_THREADS or default> run_s=<seconds per training run>
    update_ms=<this loop's RLS update> inplace_ms=<the same update in place with BLAS> spec_scaled_s=<...>
bench/fit_vs_reference.sh runs it beside bench_fit so both figures come from the same machine and run.

The spec gives, for its machine, the reference's run (N 1,200: 30.6 s; 2,400: 184 s) and the update
done in place with BLAS (gemv + two rank-1 updates: 0.6 ms, 4.7 ms). Timing that in-place update
here calibrates the machines: spec_scaled_s = spec run x (in-place here / in-place spec), the
reference's own run estimated for this machine. The reference's update costs 63x (N 1,200) its
in-place form on the spec's machine, this loop's about 10x here: this loop is the cheaper of the two.
"""
import argparse
import os
import time

import numpy as np


def run_seconds(n, cycles, df=5, dt_data=0.01, tau=0.1, seed=0):
    rng = np.random.default_rng(seed)
    dt = dt_data / df
    J = 1.5 * rng.standard_normal((n, n)) / np.sqrt(n)
    P = np.eye(n)
    x = 0.1 * rng.standard_normal(n)
    target = np.tanh(0.3 * rng.standard_normal((n, cycles + 1)))
    noise = 0.01 * rng.standard_normal((n, df))
    start = time.perf_counter()
    for i in range(cycles):
        for s in range(df):
            r = np.tanh(x)
            x = x + dt * (-x + J.dot(r) + noise[:, s]) / tau
        e = r - target[:, i + 1]
        k = P.dot(r)
        c = 1.0 / (1.0 + r.dot(k))
        P = P - c * np.outer(k, k)
        J = J - c * np.outer(e, k)
    return (time.perf_counter() - start) / cycles * 1200


SPEC = {1200: (30.6, 0.6), 2400: (184.0, 4.7)}  # N: (reference run s, in-place update ms), spec's machine


def update_ms(n, reps, seed=1):
    """ms per RLS update: this loop's (numpy outer products) and in place (dgemv + two dger)."""
    from scipy.linalg import blas
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((n, n)) / np.sqrt(n)
    P = np.eye(n)
    r = np.tanh(rng.standard_normal(n))
    e = 0.01 * rng.standard_normal(n)
    t = time.perf_counter()
    for _ in range(reps):
        k = P.dot(r)
        c = 1.0 / (1.0 + r.dot(k))
        P = P - c * np.outer(k, k)
        J = J - c * np.outer(e, k)
    outer = (time.perf_counter() - t) / reps * 1e3
    Pf, Jf = np.asfortranarray(np.eye(n)), np.asfortranarray(J)
    t = time.perf_counter()
    for _ in range(reps):
        k = blas.dgemv(1.0, Pf, r)
        c = 1.0 / (1.0 + r.dot(k))
        blas.dger(-c, k, k, a=Pf, overwrite_a=1)
        blas.dger(-c, e, k, a=Jf, overwrite_a=1)
    inplace = (time.perf_counter() - t) / reps * 1e3
    return outer, inplace


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1200, 2400])
    ap.add_argument("--cycles", type=int, default=0, help="learning cycles timed (0: about 2 s of work per N)")
    a = ap.parse_args()
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    for n in a.sizes:
        cycles = a.cycles or max(20, int(300 * (1200 / n) ** 2))
        run = run_seconds(n, cycles)
        outer, inplace = update_ms(n, max(5, cycles // 5))
        scaled = f"{SPEC[n][0] * inplace / SPEC[n][1]:.1f}" if n in SPEC else "-"
        print(f"reference_loop N={n} threads={threads} cycles={cycles} run_s={run:.3f} update_ms={outer:.2f} "
              f"inplace_ms={inplace:.3f} spec_scaled_s={scaled}", flush=True)


if __name__ == "__main__":
    main()
