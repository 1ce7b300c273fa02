// bench_modes: time per HALS iteration and bytes communicated per iteration of the distributed
// factorization on a planted cohort (default 64 animals, 20 regions = 380 pairs, T = 1000..1500,
// K = 6). Not part of ctest.
//   mpirun -n 1 bench/modes/bench_modes [animals] [regions] [T] [K] [iterations]
//   mpirun -n 2 bench/modes/bench_modes
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/log.hpp"
#include "core/parallel.hpp"
#include "modes/layout.hpp"
#include "modes/nmf.hpp"

using namespace cohortnet;
using namespace cohortnet::modes;

int main(int argc, char** argv) {
  Environment env(&argc, &argv);
  const int A = argc > 1 ? std::atoi(argv[1]) : 64;
  const int R = argc > 2 ? std::atoi(argv[2]) : 20;
  const int T = argc > 3 ? std::atoi(argv[3]) : 1000;
  const int K = argc > 4 ? std::atoi(argv[4]) : 6;
  const int iters = argc > 5 ? std::atoi(argv[5]) : 30;
  SyntheticSpec s;
  s.A = A;
  s.R = R;
  s.T = T;
  s.K = K;
  s.seed = 5;
  const SyntheticCohort c = make_synthetic(s);
  std::vector<const AnimalMatrix*> ptrs;
  long samples = 0;
  for (auto& a : c.animals) {
    ptrs.push_back(&a);
    samples += a.T;
  }
  const int size = comm_size(MPI_COMM_WORLD);
  log::info(MPI_COMM_WORLD, "bench_modes: ", A, " animals, ", R, " regions (", c.layout.P(), " pairs), ", samples,
            " samples in all, K = ", K, ", ", size, " ranks, ", iters, " iterations");
  for (Reduction red : {Reduction::ordered, Reduction::sum}) {
    FitOptions o;
    o.K = K;
    o.reduction = red;
    MaskedHals h(ptrs, c.layout.P(), o, MPI_COMM_WORLD);
    h.init_random();
    h.step();  // warm-up
    double comm_time = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = std::chrono::steady_clock::now();
    double f = 0;
    for (int i = 0; i < iters; ++i) f = h.step();
    MPI_Barrier(MPI_COMM_WORLD);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    (void)comm_time;
    // Rank 0's split (the warm-up step is included in the split, not in the total).
    const double n = iters + 1;
    log::info(MPI_COMM_WORLD, "  reduction ", red == Reduction::ordered ? "ordered" : "sum    ", ": ", 1e3 * sec / iters,
              " ms per iteration (rank 0: local H step + sums ", 1e3 * h.seconds_local / n, " ms, Allreduce ",
              1e3 * h.seconds_reduce / n, " ms, W step ", 1e3 * h.seconds_w / n, " ms); Allreduce payload ",
              h.bytes_per_iter() / 1024.0, " KiB per rank per iteration (1 call), objective ", f);
  }
  return 0;
}
