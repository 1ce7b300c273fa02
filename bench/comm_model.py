#!/usr/bin/env python3
"""Time per RNN step of the distributed CURBD fit on p ranks: memory-bound compute + all-gathers.

The model of docs/performance.md ("Communication and scaling past one node"); standard library only.

    python3 bench/comm_model.py                      # the table of docs/performance.md
    python3 bench/comm_model.py --B 20 --blocks 3    # other per-rank bandwidth, region prior M = 3

t_step(N, p) = t_compute + t_comm, averaged over the RNN steps of one learning cycle (dtFactor steps):
  t_compute = (dtFactor + M + (1 + M) / U) x 8 N^2 / p bytes / (dtFactor B)
              (every RNN step reads J once; each learning step reads each of the M P blocks once;
              J and each P are written once per update block of U = 8 learning steps; M = 1 for
              --prior shared)
  t_comm    = (dtFactor + M) / dtFactor x [alpha ceil(log2 p) + beta (p - 1)/p 8 N]
              (one all-gather of r per RNN step, M of k per learning step; recursive doubling/ring)
No overlap of the two is assumed (the fit does none today).
"""
import argparse
import math


def compute_s(N, p, B, df, blocks, ub=8):
    # matrix passes of 8 N^2 / p bytes per learning cycle (docs/performance.md, roofline): J read
    # at each of the df RNN steps, each P read once, J and each P written once per update block ub
    passes = df + blocks + (1 + blocks) / ub
    return passes * 8.0 * N * N / p / (df * B)


def allgather_s(N, p, alpha, beta):
    if p == 1:
        return 0.0
    return alpha * math.ceil(math.log2(p)) + beta * (p - 1) / p * 8.0 * N


def comm_s(N, p, alpha, beta, df, blocks, q=1):
    return (df + blocks) / df * allgather_s(N, p, alpha, beta * (q if p > q else 1))


def fmt_t(s):
    if s == 0:
        return "0"
    if s >= 1:
        return "%.2f s" % s
    if s >= 1e-3:
        return "%.2f ms" % (s * 1e3)
    return "%.1f us" % (s * 1e6)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=float, default=10.0, help="memory bandwidth per rank, GB/s (default 10)")
    ap.add_argument("--B-cache", type=float, default=25.0,
                    help="bandwidth per rank when J and P fit in cache, GB/s (default 25: the fit's J r on a "
                         "cache-resident block, measured by bench_comm at N = 600)")
    ap.add_argument("--cache-mb", type=float, default=4.0,
                    help="per-core cache share under which J and P are taken as cache-resident (default 4 MB)")
    ap.add_argument("--alpha-us", type=float, default=2.0, help="network latency per all-gather stage, us")
    ap.add_argument("--link-gbs", type=float, default=12.5, help="network bandwidth per rank, GB/s (1/beta)")
    ap.add_argument("--shm-alpha-us", type=float, default=1.3, help="measured shared-memory alpha, us")
    ap.add_argument("--shm-gbs", type=float, default=5.0, help="measured shared-memory 1/beta, GB/s")
    ap.add_argument("--ranks-per-node", type=int, default=1,
                    help="q ranks per node sharing one link: once p > q the bandwidth term is taken q times larger "
                         "(a flat, not topology-aware all-gather: worst case); p <= q is one node (shared memory). "
                         "Default 1 (one rank per node, or a hierarchical all-gather)")
    ap.add_argument("--dt-factor", type=int, default=5)
    ap.add_argument("--blocks", type=int, default=1, help="P blocks: 1 (--prior shared) or M regions")
    ap.add_argument("--N", type=int, nargs="*", default=[2400, 9600, 38400, 100000])
    ap.add_argument("--p", type=int, nargs="*", default=[1, 2, 8, 32, 128, 512])
    a = ap.parse_args()
    B, Bc = a.B * 1e9, a.B_cache * 1e9
    alpha, beta = a.alpha_us * 1e-6, 1.0 / (a.link_gbs * 1e9)
    salpha, sbeta = a.shm_alpha_us * 1e-6, 1.0 / (a.shm_gbs * 1e9)
    df, M = a.dt_factor, a.blocks

    print("per RNN step, dtFactor %d, %d P block(s); B = %g GB/s per rank; network alpha = %g us, %g GB/s; "
          "shared memory (measured) alpha = %g us, %g GB/s; %d rank(s) per node" % (
              df, M, a.B, a.alpha_us, a.link_gbs, a.shm_alpha_us, a.shm_gbs, a.ranks_per_node))
    q = a.ranks_per_node

    def t_net(N, p):  # the "network" column: shared memory while the ranks fit one node
        return comm_s(N, p, alpha, beta, df, M, q) if p > q else comm_s(N, p, salpha, sbeta, df, M)

    print("| N | p | J+P per rank | t_compute | t_comm shm | t_comm network | network comm/compute | dominates |")
    print("|---|---|---|---|---|---|---|---|")
    for N in a.N:
        for p in a.p:
            mb = (1 + M) * 8.0 * N * N / p / 1e6
            tc = compute_s(N, p, B, df, M)
            tn = t_net(N, p)
            ts = comm_s(N, p, salpha, sbeta, df, M)
            ratio = tn / tc
            dom = "comm" if ratio > 1 else "compute"
            note = ""
            if mb <= a.cache_mb:
                tcc = compute_s(N, p, Bc, df, M)
                note = " (in cache: %s, %s)" % (fmt_t(tcc), "comm" if tn > tcc else "compute")
            size = "%.0f GB" % (mb / 1e3) if mb >= 1e4 else ("%.1f MB" % mb if mb < 10 else "%.0f MB" % mb)
            print("| %d | %d | %s | %s%s | %s | %s | %.2g | %s |" % (N, p, size, fmt_t(tc), note, fmt_t(ts),
                                                                   fmt_t(tn), ratio, dom))
    # Where communication overtakes compute (DRAM bandwidth B): smallest p (powers of two) per N,
    # and the largest N per p (comm - compute falls with N: bisection).
    print("\nsmallest p (power of 2) at which network comm >= compute (DRAM bandwidth B):")
    for N in a.N:
        p, found = 2, None
        while p <= 1 << 20:
            if t_net(N, p) >= compute_s(N, p, B, df, M):
                found = p
                break
            p *= 2
        print("  N = %d: p = %s" % (N, found if found else "> 1e6"))
    print("largest N at which network comm >= compute, per p:")
    for p in a.p:
        if p == 1:
            continue
        lo, hi = 1.0, 1e8
        while hi - lo > 1:
            mid = 0.5 * (lo + hi)
            if t_net(mid, p) >= compute_s(mid, p, B, df, M):
                lo = mid
            else:
                hi = mid
        print("  p = %d: N <= %.0f" % (p, lo))


if __name__ == "__main__":
    main()
