// bench_fit: time per training run and per learning step of the distributed CURBD fit at
// N = 600, 1200, 2400 (T = 1201, dtFactor 5), at 1 rank and at all ranks of the job, beside the
// memory bandwidth measured in the same run (STREAM-triad-like loop) and the bytes a step must
// move, so the numbers read as fractions of the machine's limit. Not a test (see bench/README.md).
//   mpirun -n 2 bench_fit [N ...]
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/parallel.hpp"
#include "fit/curbd.hpp"
#include "fit/kernels.hpp"

using namespace cohortnet;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Idle ranks wait without spinning (an MPI barrier would busy-poll a core the benchmark needs).
void gentle_barrier(MPI_Comm comm) {
  MPI_Request req;
  MPI_Ibarrier(comm, &req);
  int done = 0;
  while (!done) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// STREAM triad a = b + s*c on every rank of comm at once; returns the aggregate GB/s (best of 5).
double triad_gbs(MPI_Comm comm) {
  const size_t n = 16u << 20;  // 16 Mi doubles per array, 384 MiB per rank: far beyond caches
  std::vector<double> a(n, 0.0), b(n, 1.0), c(n, 2.0);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    MPI_Barrier(comm);
    auto t0 = Clock::now();
    const double s = 0.5 + rep;
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    double t = seconds_since(t0);
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
    best = std::min(best, t);
  }
  volatile double sink = a[n / 2];
  (void)sink;
  return 24.0 * double(n) * comm_size(comm) / best / 1e9;
}

AnimalData synthetic(std::int64_t N, std::int64_t T, MPI_Comm comm) {
  AnimalData d;
  d.meta.animal_id = "bench";
  d.meta.n_units = N;
  d.meta.n_samples = T;
  d.meta.sample_interval = 0.01;
  d.meta.region_names = {"A", "B", "C"};
  for (std::int64_t i = 0; i < N; ++i) d.meta.unit_region.push_back(int(3 * i / N));
  d.meta.trial_starts = {0};
  d.rows = own_rows(PetscInt(N), comm);
  d.activity.resize(size_t(d.rows.count()) * size_t(T));
  for (PetscInt i = 0; i < d.rows.count(); ++i)
    for (std::int64_t t = 0; t < T; ++t) {
      const double u = double(d.rows.begin + i), tt = double(t) * 0.01;
      d.activity[size_t(i) * size_t(T) + size_t(t)] = std::sin(2.0 * tt * (1.0 + std::fmod(u * 0.37, 1.0)) + u);
    }
  return d;
}

struct Result {
  double run_s = 0, step_ms = 0;
};

Result bench_one(std::int64_t N, std::int64_t T, MPI_Comm comm) {
  AnimalData data = synthetic(N, T, comm);
  fit::Params p;
  p.dt_factor = 5;
  p.tau_rnn = 0.1;
  p.runs_train = 1;
  p.runs_free = 0;
  fit::Trainer tr(data, 0, p, comm);
  Result r;
  MPI_Barrier(comm);
  auto t0 = Clock::now();
  tr.run_next();
  r.run_s = seconds_since(t0);
  MPI_Allreduce(MPI_IN_PLACE, &r.run_s, 1, MPI_DOUBLE, MPI_MAX, comm);

  // The RLS update alone (k = P r, gather k, P -= c k k^T, J -= c e k^T fused with the next J r),
  // repeated on the trained matrices with a fixed small rate vector.
  const PetscInt m = tr.rows().count(), n = PetscInt(N);
  std::vector<int> counts, offsets;
  row_layout(n, comm, counts, offsets);
  const size_t ns = static_cast<size_t>(n), ms = static_cast<size_t>(m);
  std::vector<double> rr(ns), k(ns), kl(ms), e(ms, 1e-9), y(ms);
  for (PetscInt j = 0; j < n; ++j) rr[size_t(j)] = 0.5 * std::sin(double(j));
  PetscScalar *Pa = nullptr, *Ja = nullptr;
  PetscInt ldp = 0, ldj = 0;
  MatDenseGetArray(tr.P(), &Pa);
  MatDenseGetLDA(tr.P(), &ldp);
  MatDenseGetArray(tr.J(), &Ja);
  MatDenseGetLDA(tr.J(), &ldj);
  const int reps = 20;
  MPI_Barrier(comm);
  t0 = Clock::now();
  std::vector<double> pkl(ms, 0.0), pk(ns, 0.0);
  double pc = 0;
  for (int s = 0; s < reps; ++s) {
    // As in the fit: the previous step's P update fused with this step's P r; J's update fused
    // with the next J r.
    fit::kernels::ger_gemv(m, n, Pa, ldp, pc, pkl.data(), pk.data(), rr.data(), kl.data());
    MPI_Allgatherv(kl.data(), int(m), MPI_DOUBLE, k.data(), counts.data(), offsets.data(), MPI_DOUBLE, comm);
    double rk = 0;
    for (PetscInt j = 0; j < n; ++j) rk += rr[size_t(j)] * k[size_t(j)];
    pc = 1e-12 / (1.0 + std::abs(rk));  // tiny: keeps P positive over the repetitions
    pkl.swap(kl);
    pk.swap(k);
    fit::kernels::ger_gemv(m, n, Ja, ldj, pc, e.data(), pk.data(), rr.data(), y.data());
  }
  double t = seconds_since(t0);
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
  MatDenseRestoreArray(tr.P(), &Pa);
  MatDenseRestoreArray(tr.J(), &Ja);
  r.step_ms = 1e3 * t / reps;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes;
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') sizes.push_back(std::atoll(argv[i]));
  if (sizes.empty()) sizes = {600, 1200, 2400};
  Environment env(&argc, &argv);
  MPI_Comm world = MPI_COMM_WORLD;
  const int rank = comm_rank(world), size = comm_size(world);
  const std::int64_t T = 1201, df = 5, L = (T - 1) * df + 1, learn = T - 1;

  std::vector<int> counts_p = {1};
  if (size > 1) counts_p.push_back(size);
  if (rank == 0)
    std::printf("bench_fit: T=%lld dtFactor=%lld (%lld RNN steps, %lld learning steps per run), OPENBLAS_NUM_THREADS=%s\n",
                (long long)T, (long long)df, (long long)(L - 1), (long long)learn,
                std::getenv("OPENBLAS_NUM_THREADS") ? std::getenv("OPENBLAS_NUM_THREADS") : "unset");
  for (int p : counts_p) {
    MPI_Comm comm;
    MPI_Comm_split(world, rank < p ? 0 : MPI_UNDEFINED, rank, &comm);
    if (comm != MPI_COMM_NULL) {
      const double bw = triad_gbs(comm);
      if (rank == 0) {
        std::printf("\n== %d rank(s): STREAM-triad bandwidth %.2f GB/s (all %d ranks together)\n", p, bw, p);
        std::printf("%6s %12s %14s %12s %14s %12s %14s\n", "N", "run (s)", "run GB moved", "run GB/s",
                    "learn step ms", "step MB", "step GB/s");
        std::fflush(stdout);
      }
      for (std::int64_t N : sizes) {
        Result r = bench_one(N, T, comm);
        // Bytes the algorithm must move (8-byte doubles, all ranks): per RNN step J read once
        // (J r); per learning step P read and written once (the previous rank-1 update fused with
        // P r) and J read and written once (rank-1 update fused with the next step's J r).
        const double mat = 8.0 * double(N) * double(N);
        const double run_bytes = mat * (double(L - 1 - learn) + 2.0 * double(learn) + 2.0 * double(learn));
        const double step_bytes = 4.0 * mat;
        if (rank == 0) {
          std::printf("%6lld %12.3f %14.1f %12.2f %14.3f %12.1f %14.2f\n", (long long)N, r.run_s, run_bytes / 1e9,
                      run_bytes / r.run_s / 1e9, r.step_ms, step_bytes / 1e6, step_bytes / (r.step_ms * 1e-3) / 1e9);
          std::fflush(stdout);
        }
      }
      MPI_Comm_free(&comm);
    }
    gentle_barrier(world);
  }
  if (rank == 0)
    std::printf("\nReference Python (spec, this machine): one training run N=1200 30.6 s, N=2400 184 s; "
                "RLS update alone N=1200 38 ms, N=2400 210 ms (in-place BLAS: 0.6 ms, 4.7 ms).\n");
  return 0;
}
