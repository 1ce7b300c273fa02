#!/usr/bin/env python3
"""Time per RNN step (and per training run) of the distributed CURBD fit on p ranks: memory-bound
compute + all-gathers. The model of docs/performance.md ("Communication and scaling past one node");
standard library only.

    python3 bench/comm_model.py                          # the table of docs/performance.md (block prior)
    python3 bench/comm_model.py --prior region --regions 3 --B 20
    python3 bench/comm_model.py --project                # N = 80,000, 70 regions, T = 3,000 on 8-64 nodes

Per learning cycle (dtFactor RNN steps, one learning step), in matrix passes of 8 N^2 / p bytes:
  J:  read at every RNN step (J r)                                      dtFactor
  P:  read once per learning step (P z)                                 s
  J, P written once per update block of U = 8 learning steps            (1 + s) / U
where s is the size of the RLS matrices in N x N matrices: 1 (--prior shared), M (--prior region),
sum_Q n_Q^2 / N^2 = 1/M for M equal regions (--prior block, the default).
  t_compute = (dtFactor + s + (1 + s) / U) x 8 N^2 / p bytes / (dtFactor x B)
Communication (src/fit/trainer.cpp Trainer::run, src/fit/rls.cpp Rls::step_*): one MPI_Allgatherv of
the rates r (N doubles) per RNN step, and per learning step one of k = P z per P (shared 1, region M,
block 1: every unit's entry of k is its own region's, so one gather serves all regions):
  t_comm    = (dtFactor + g) / dtFactor x [alpha ceil(log2 p) + beta (p - 1)/p 8 N],  g = 1 or M
(recursive doubling's latency, the ring's bandwidth). No overlap of the two is assumed (the fit
does none).
"""
import argparse
import math


def p_mats(prior, M):
    """Size of the RLS matrices in N x N matrices, and the k all-gathers per learning step."""
    if prior == "shared":
        return 1.0, 1
    if prior == "region":
        return float(M), M
    return 1.0 / M, 1  # block: sum_Q n_Q^2 = N^2 / M for M equal regions


def compute_s(N, p, B, df, s, ub=8):
    passes = df + s + (1 + s) / ub
    return passes * 8.0 * N * N / p / (df * B)


def allgather_s(N, p, alpha, beta):
    if p == 1:
        return 0.0
    return alpha * math.ceil(math.log2(p)) + beta * (p - 1) / p * 8.0 * N


def comm_s(N, p, alpha, beta, df, gathers, q=1):
    return (df + gathers) / df * allgather_s(N, p, alpha, beta * (q if p > q else 1))


def fmt_t(s):
    if s == 0:
        return "0"
    if s >= 1:
        return "%.2f s" % s
    if s >= 1e-3:
        return "%.2f ms" % (s * 1e3)
    return "%.1f us" % (s * 1e6)


def fmt_bytes(b):
    mb = b / 1e6
    if mb >= 1e4:
        return "%.0f GB" % (mb / 1e3)
    return "%.1f MB" % mb if mb < 10 else "%.0f MB" % mb


def project(a):
    """Time per training run of one whole-brain animal over nodes: compute at the node's bandwidth
    shared by its ranks, the all-gathers flat over every rank (each node link carries its ranks'
    shares) or hierarchical (one exchange per node over the network, then within the node)."""
    N, M, T, df = a.proj_N, a.proj_regions, a.proj_T, a.dt_factor
    s, g = p_mats("block", M)
    q = a.ranks_per_node_proj
    alpha, beta = a.alpha_us * 1e-6, 1.0 / (a.link_gbs * 1e9)
    salpha, sbeta = a.shm_alpha_us * 1e-6, 1.0 / (a.shm_gbs * 1e9)
    steps = (T - 1) * df
    print("Projection: N = %d units, %d regions, T = %d samples, dtFactor %d (%d RNN steps, %d learning steps per "
          "training run), block prior; %d ranks per node, node memory bandwidth %g GB/s (%.2f GB/s per rank); network "
          "alpha %g us per stage, link %g GB/s per node; within a node alpha %g us, %g GB/s" % (
              N, M, T, df, steps, T - 1, q, a.node_gbs, a.node_gbs / q, a.alpha_us, a.link_gbs, a.shm_alpha_us,
              a.shm_gbs))
    print("| nodes | ranks | J + P blocks per rank | t_compute / step | t_comm / step, hierarchical | "
          "t_comm / step, flat | run (hierarchical) | run (flat) | comm share (flat) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for nodes in a.nodes:
        p = nodes * q
        B = a.node_gbs / q * 1e9
        tc = compute_s(N, p, B, df, s)
        # hierarchical: gather within the node (shared memory), exchange the node's 8N/nodes share
        # between nodes (log2 nodes stages), then spread within the node
        th = (df + g) / df * (allgather_s(N, nodes, alpha, beta) + 2 * allgather_s(N, q, salpha, sbeta))
        tf = comm_s(N, p, alpha, beta, df, g, q)
        mem = (1 + s) * 8.0 * N * N / p
        print("| %d | %d | %s | %s | %s | %s | %s | %s | %.1f%% |" % (
            nodes, p, fmt_bytes(mem), fmt_t(tc), fmt_t(th), fmt_t(tf), fmt_t(steps * (tc + th)),
            fmt_t(steps * (tc + tf)), 100 * tf / (tc + tf)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", choices=["shared", "region", "block"], default="block",
                    help="the fit's --prior (default block, the fit's default)")
    ap.add_argument("--regions", type=int, default=3, help="M regions (region and block priors; default 3)")
    ap.add_argument("--B", type=float, default=10.0, help="memory bandwidth per rank, GB/s (default 10)")
    ap.add_argument("--B-cache", type=float, default=25.0,
                    help="bandwidth per rank when J and P fit in cache, GB/s (default 25: the fit's J r on a "
                         "cache-resident block, measured by bench_comm at N = 600)")
    ap.add_argument("--cache-mb", type=float, default=4.0,
                    help="per-core cache share under which J and P are taken as cache-resident (default 4 MB)")
    ap.add_argument("--alpha-us", type=float, default=2.0, help="network latency per all-gather stage, us")
    ap.add_argument("--link-gbs", type=float, default=12.5, help="network bandwidth per node link, GB/s (1/beta)")
    ap.add_argument("--shm-alpha-us", type=float, default=1.3, help="shared-memory alpha, us (bench_comm)")
    ap.add_argument("--shm-gbs", type=float, default=5.0, help="shared-memory 1/beta, GB/s (bench_comm)")
    ap.add_argument("--ranks-per-node", type=int, default=1,
                    help="q ranks per node sharing one link: once p > q the bandwidth term is taken q times larger "
                         "(a flat, not topology-aware all-gather: worst case); p <= q is one node (shared memory). "
                         "Default 1 (one rank per node, or a hierarchical all-gather)")
    ap.add_argument("--dt-factor", type=int, default=5)
    ap.add_argument("--N", type=int, nargs="*", default=[2400, 9600, 38400, 100000])
    ap.add_argument("--p", type=int, nargs="*", default=[1, 2, 8, 32, 128, 512])
    ap.add_argument("--project", action="store_true",
                    help="instead of the table: time per training run of one large animal on --nodes nodes")
    ap.add_argument("--proj-N", type=int, default=80000)
    ap.add_argument("--proj-regions", type=int, default=70)
    ap.add_argument("--proj-T", type=int, default=3000)
    ap.add_argument("--nodes", type=int, nargs="*", default=[2, 8, 16, 32, 64])
    ap.add_argument("--ranks-per-node-proj", type=int, default=64, help="ranks per node in --project (default 64)")
    ap.add_argument("--node-gbs", type=float, default=200.0,
                    help="memory bandwidth of one node in --project, GB/s (default 200: a two-socket node's "
                         "sustained STREAM-class figure, an assumption; give the cluster's)")
    a = ap.parse_args()
    if a.project:
        project(a)
        return
    B, Bc = a.B * 1e9, a.B_cache * 1e9
    alpha, beta = a.alpha_us * 1e-6, 1.0 / (a.link_gbs * 1e9)
    salpha, sbeta = a.shm_alpha_us * 1e-6, 1.0 / (a.shm_gbs * 1e9)
    df = a.dt_factor
    s, g = p_mats(a.prior, a.regions)

    print("per RNN step, dtFactor %d, --prior %s (M = %d: P = %.3g N^2, %d gather(s) of k per learning step); "
          "B = %g GB/s per rank; network alpha = %g us, %g GB/s; shared memory alpha = %g us, %g GB/s; "
          "%d rank(s) per node" % (df, a.prior, a.regions, s, g, a.B, a.alpha_us, a.link_gbs, a.shm_alpha_us,
                                   a.shm_gbs, a.ranks_per_node))
    q = a.ranks_per_node

    def t_net(N, p):  # the "network" column: shared memory while the ranks fit one node
        return comm_s(N, p, alpha, beta, df, g, q) if p > q else comm_s(N, p, salpha, sbeta, df, g)

    print("| N | p | J+P per rank | t_compute | t_comm shm | t_comm network | network comm/compute | dominates |")
    print("|---|---|---|---|---|---|---|---|")
    for N in a.N:
        for p in a.p:
            mem = (1 + s) * 8.0 * N * N / p
            tc = compute_s(N, p, B, df, s)
            tn = t_net(N, p)
            ts = comm_s(N, p, salpha, sbeta, df, g)
            ratio = tn / tc
            dom = "comm" if ratio > 1 else "compute"
            note = ""
            if mem / 1e6 <= a.cache_mb:
                tcc = compute_s(N, p, Bc, df, s)
                note = " (in cache: %s, %s)" % (fmt_t(tcc), "comm" if tn > tcc else "compute")
            print("| %d | %d | %s | %s%s | %s | %s | %.2g | %s |" % (N, p, fmt_bytes(mem), fmt_t(tc), note, fmt_t(ts),
                                                                   fmt_t(tn), ratio, dom))
    # Where communication overtakes compute (DRAM bandwidth B): smallest p (powers of two) per N,
    # and the largest N per p (comm - compute falls with N: bisection).
    print("\nsmallest p (power of 2) at which network comm >= compute (DRAM bandwidth B):")
    for N in a.N:
        p, found = 2, None
        while p <= 1 << 20:
            if t_net(N, p) >= compute_s(N, p, B, df, s):
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
            if t_net(mid, p) >= compute_s(mid, p, B, df, s):
                lo = mid
            else:
                hi = mid
        print("  p = %d: N <= %.0f" % (p, lo))


if __name__ == "__main__":
    main()
