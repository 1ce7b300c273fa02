// bench_fit: one training run of the distributed CURBD fit (T = 1201, dtFactor 5) at each N, at 1
// rank and at all ranks of the job, against the roofline floor of docs/performance.md computed
// with the memory bandwidth this run measures at the same working-set size, against the same run
// done the plain way (in-place BLAS gemv/ger on every step, serially), and with the peak memory of
// each rank. Not a test (bench/README.md).
//   mpirun -n 2 bench_fit [N ...] [--variants shared,plain,region]
#include <malloc.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/parallel.hpp"
#include "core/text.hpp"
#include "fit/cohort.hpp"
#include "fit/curbd.hpp"

extern "C" {
void dgemv_(const char*, const int*, const int*, const double*, const double*, const int*, const double*, const int*,
            const double*, double*, const int*);
void dger_(const int*, const int*, const double*, const double*, const int*, const double*, const int*, double*,
           const int*);
}

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

// Four doubles as one vector register (GCC/Clang vector extension), loaded unaligned.
typedef double V4 __attribute__((vector_size(32)));
inline V4 load4(const double* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Streaming bandwidth per rank (GB/s) over a buffer of `bytes`, every rank of comm at once, best
// of several passes: `read` sums the buffer (what a matrix-vector product does to the matrix),
// otherwise each element is read and written (a rank-1 update), counted as 2 x bytes.
double stream_gbs(MPI_Comm comm, double bytes, bool read) {
  const size_t n = std::max<size_t>(size_t(bytes / 8.0), 4096);
  std::vector<double> a(n, 1.0);
  const int passes = int(std::clamp(4e9 / bytes, 3.0, 200.0));
  double best = 1e30, sink = 0;
  for (int rep = 0; rep < passes; ++rep) {
    MPI_Barrier(comm);
    auto t0 = Clock::now();
    if (read) {
      // Four streams at once (quarters of the buffer), as the matrix kernels read four columns;
      // eight lanes per stream so the adds vectorise and the loop is bound by memory, not by
      // add latency (in L2 it runs at several times the L3 figure).
      const size_t q = n / 4;
      const double *a0 = a.data(), *a1 = a0 + q, *a2 = a1 + q, *a3 = a2 + q;
      V4 s0a{}, s0b{}, s1a{}, s1b{}, s2a{}, s2b{}, s3a{}, s3b{};
      for (size_t i = 0; i + 8 <= q; i += 8) {
        s0a += load4(a0 + i);
        s0b += load4(a0 + i + 4);
        s1a += load4(a1 + i);
        s1b += load4(a1 + i + 4);
        s2a += load4(a2 + i);
        s2b += load4(a2 + i + 4);
        s3a += load4(a3 + i);
        s3b += load4(a3 + i + 4);
      }
      const V4 t = ((s0a + s0b) + (s1a + s1b)) + ((s2a + s2b) + (s3a + s3b));
      sink += (t[0] + t[1]) + (t[2] + t[3]);
    } else {
      const double f = 1.0 + 1e-9 * rep;
      for (size_t i = 0; i < n; ++i) a[i] = a[i] * f - 1e-12;
    }
    double t = seconds_since(t0);
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
    best = std::min(best, t);
  }
  volatile double keep = sink + a[n / 2];
  (void)keep;
  return (read ? 8.0 : 16.0) * double(n) / best / 1e9;
}

// Peak resident memory of this process since the last reset (Linux VmHWM), bytes.
double peak_rss() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return 1024.0 * std::atof(line.c_str() + 6);
  return 0;
}
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
}

// interleaved: unit i in region 7i mod 3 (a real atlas's file order) instead of 3i/N (grouped).
AnimalData synthetic(std::int64_t N, std::int64_t T, MPI_Comm comm, bool interleaved = false, int n_inputs = 0) {
  AnimalData d;
  d.meta.animal_id = "bench";
  d.meta.n_units = N;
  d.meta.n_samples = T;
  d.meta.sample_interval = 0.01;
  d.meta.region_names = {"A", "B", "C"};
  for (std::int64_t i = 0; i < N; ++i) d.meta.unit_region.push_back(interleaved ? int((7 * i) % 3) : int(3 * i / N));
  d.meta.trial_starts = {0};
  d.rows = own_rows(PetscInt(N), comm);
  // Input channels (the gated variant): slow square-ish waves, like the simulator's state drives.
  for (int c = 0; c < n_inputs; ++c) {
    d.meta.input_names.push_back("drive" + std::to_string(c));
    for (std::int64_t t = 0; t < T; ++t)
      d.inputs.push_back(std::tanh(3.0 * std::sin(0.01 * double(t) * (0.7 + 0.45 * c) + c)));
  }
  d.activity.resize(size_t(d.rows.count()) * size_t(T));
  // Interleaved: the grouped animal with its units relabelled (unit i's signal is that of its
  // position in the grouped order), so both fits are the same network and only the layout differs.
  std::vector<std::int64_t> pos(static_cast<size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) pos[size_t(i)] = i;
  if (interleaved) {
    const UnitOrder o = UnitOrder::by_region(d.meta.unit_region);
    for (std::int64_t k = 0; k < N; ++k) pos[size_t(o.file_index(k))] = k;
  }
  for (PetscInt i = 0; i < d.rows.count(); ++i)
    for (std::int64_t t = 0; t < T; ++t) {
      const double u = double(pos[size_t(d.rows.begin + i)]), tt = double(t) * 0.01;
      d.activity[size_t(i) * size_t(T) + size_t(t)] = std::sin(2.0 * tt * (1.0 + std::fmod(u * 0.37, 1.0)) + u);
    }
  return d;
}

struct Variant {
  std::string name;
  fit::Prior prior;
  int block;
  bool interleaved = false;  // block prior: regions interleaved in the fit's unit order
  int n_inputs = 0;          // input channels of the synthetic animal (W_in learns them)
  bool gated = false;        // block prior with --gains inputs (issue 14)
};

// One training run; returns the slowest rank's seconds and the largest per-rank peak memory. The
// block prior starts from the regression start: its seconds (slowest rank) go to start_s (0 otherwise).
void run_once(std::int64_t N, std::int64_t T, const Variant& v, MPI_Comm comm, double& seconds, double& peak,
              double& start_s) {
  reset_peak_rss();
  start_s = 0;
  {
    AnimalData data = synthetic(N, T, comm, v.interleaved, v.n_inputs);
    fit::Params p;
    p.set_time(0.1, 5);
    p.horizon_auto = false;
    p.stop_when_flat = 0;
    p.runs_train = 1;
    p.runs_free = 0;
    p.prior = v.prior;
    p.update_block = v.block;
    p.start = fit::Start::Random;  // one training run alone (the regression start would come before it)
    if (v.gated) {
      p.gains = fit::GainModel::Inputs;
      // Time the gated model's training whatever the acceptance decides on synthetic data.
      p.gains_accept = 1.0;  // (the gated product runs whether a region keeps gains or not)
      p.gains_min_modulation = 0.0;
    }
    if (v.prior == fit::Prior::Block) {
      // The block prior needs the regression start: it runs with the first run (timed on its own
      // by the Trainer); the second training run is timed.
      p.start = fit::Start::Regression;
      p.runs_train = 2;
    }
    fit::Trainer tr(data, 0, p, comm);
    // The synthetic sines are not a recording a network can follow at every N (at N 4800 the
    // regression start from 800 samples saturates): the quality check's verdict, thrown after a
    // complete run, is not what is timed here, so it is noted and the timing kept.
    auto run_timed = [&] {
      try {
        tr.run_next();
      } catch (const fit::Diverged& e) {
        if (comm_rank(comm) == 0) std::printf("  (timing only; the fit's verdict on the synthetic data: %s)\n", e.what());
      }
    };
    if (v.prior == fit::Prior::Block) {
      run_timed();
      start_s = tr.start_seconds();
    }
    MPI_Barrier(comm);
    auto t0 = Clock::now();
    run_timed();
    seconds = seconds_since(t0);
  }
  peak = peak_rss();
  MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, comm);
  MPI_Allreduce(MPI_IN_PLACE, &peak, 1, MPI_DOUBLE, MPI_MAX, comm);
  MPI_Allreduce(MPI_IN_PLACE, &start_s, 1, MPI_DOUBLE, MPI_MAX, comm);
}

// The same training run done the plain way, serially: per RNN step J r by BLAS dgemv, per learning
// step k = P r (dgemv), P -= c k k^T and J -= c e k^T in place (dger). Timed over `cycles` learning
// cycles (dtFactor RNN steps each) and scaled to the run.
double plain_blas_run(std::int64_t N, std::int64_t learn, int df) {
  const int n = int(N), one = 1;
  std::vector<double> J(size_t(n) * size_t(n), 1e-3), P(size_t(n) * size_t(n), 0.0), r(size_t(n), 0.1),
      y(static_cast<size_t>(n)), k(static_cast<size_t>(n)), e(static_cast<size_t>(n), 1e-6);
  for (int i = 0; i < n; ++i) P[size_t(i) * size_t(n) + size_t(i)] = 1.0;
  const double a1 = 1.0, b0 = 0.0;
  const int cycles = int(std::clamp(2e9 / (8.0 * double(n) * double(n)), 5.0, 200.0));
  auto t0 = Clock::now();
  for (int c = 0; c < cycles; ++c) {
    for (int s = 0; s < df; ++s) dgemv_("N", &n, &n, &a1, J.data(), &n, r.data(), &one, &b0, y.data(), &one);
    dgemv_("N", &n, &n, &a1, P.data(), &n, r.data(), &one, &b0, k.data(), &one);
    const double mc = -1e-9;
    dger_(&n, &n, &mc, k.data(), &one, k.data(), &one, P.data(), &n);
    dger_(&n, &n, &mc, e.data(), &one, k.data(), &one, J.data(), &n);
  }
  return seconds_since(t0) / cycles * double(learn);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes;
  std::string variants_arg = "shared,plain,region";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--variants") == 0 && i + 1 < argc) variants_arg = argv[++i];
    else if (argv[i][0] != '-') sizes.push_back(std::atoll(argv[i]));
  }
  if (sizes.empty()) sizes = {300, 600, 1200, 2400, 4800};
  Environment env(&argc, &argv);
  // Large blocks go back to the system when freed (MPI libraries may switch that off), so the
  // peak memory of each fit below is its own, not the largest so far.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 20);
  MPI_Comm world = MPI_COMM_WORLD;
  const int rank = comm_rank(world), size = comm_size(world);
  const int df = 5;
  const std::int64_t T = 1201, steps = (T - 1) * df, learn = T - 1;
  const int B = fit::Params().update_block;
  std::vector<Variant> variants;
  for (const std::string& v : split_list(variants_arg)) {
    if (v == "shared") variants.push_back({"shared P, blocked (B=" + std::to_string(B) + ")", fit::Prior::Shared, B});
    else if (v == "plain") variants.push_back({"shared P, every step (B=1)", fit::Prior::Shared, 1});
    else if (v == "region") variants.push_back({"region P (3), blocked (B=" + std::to_string(B) + ")", fit::Prior::Region, B});
    // The default (block P per region), with the units grouped by region (what the fit does for
    // any file order since UnitOrder) and interleaved (what it did before: many segments).
    else if (v == "block") variants.push_back({"block P (3), grouped units", fit::Prior::Block, B});
    else if (v == "block-interleaved") variants.push_back({"block P (3), interleaved units", fit::Prior::Block, B, true});
    // Issue 14's gated fit (--gains inputs, 3 input channels) and the fixed-J fit with the same inputs.
    else if (v == "block-inputs") variants.push_back({"block P (3), 3 inputs, fixed J", fit::Prior::Block, B, false, 3, false});
    else if (v == "gains") variants.push_back({"block P (3), 3 inputs, gains", fit::Prior::Block, B, false, 3, true});
    else {
      std::fprintf(stderr, "bench_fit: unknown variant '%s' (shared, plain, region, block, block-interleaved, "
                   "block-inputs, gains)\n", v.c_str());
      return 2;
    }
  }
  if (rank == 0) {
    std::printf("bench_fit: T=%lld dtFactor=%d: %lld RNN steps and %lld learning steps per training run\n",
                (long long)T, df, (long long)steps, (long long)learn);
    std::printf("floor = bytes a run must move (J read every RNN step, half of each symmetric P read every "
                "learning step) / read bandwidth measured here at the rank's J+P size (docs/performance.md)\n");
  }
  // The machine's own figures: read bandwidth of one core against the working-set size.
  if (rank == 0) {
    std::printf("\nread bandwidth of one rank alone, by working set (where J+P of a rank fits, the floor drops):\n");
    for (double mb : {1.0, 4.0, 16.0, 64.0, 256.0, 1024.0})
      std::printf("  %7.0f MB: %6.1f GB/s\n", mb, stream_gbs(MPI_COMM_SELF, mb * 1e6, true));
    std::fflush(stdout);
  }
  gentle_barrier(world);

  struct Timing {
    int ranks;
    std::int64_t N;
    std::string variant;
    double run_s, start_s;
  };
  std::vector<Timing> timings;  // rank 0: every cell, for the strong-scaling summary
  std::vector<int> counts_p = {1};
  if (size > 1) counts_p.push_back(size);
  for (int p : counts_p) {
    MPI_Comm comm;
    MPI_Comm_split(world, rank < p ? 0 : MPI_UNDEFINED, rank, &comm);
    if (comm != MPI_COMM_NULL) {
      if (rank == 0) {
        std::printf("\n== %d rank(s)\n%6s %-30s %8s %9s %9s %9s %8s %9s %9s %8s\n", p, "N", "variant", "run s", "floor s",
                    "x floor", "J+P MB/rk", "read GB/s", "plain s", "x faster", "peak MB");
        std::fflush(stdout);
      }
      for (std::int64_t N : sizes) {
        const double mat = 8.0 * double(N) * double(N) / p;  // one matrix's bytes per rank
        double plain = 0;
        if (p == 1 && rank == 0) plain = plain_blas_run(N, learn, df);
        for (const Variant& v : variants) {
          const int n_p = v.prior == fit::Prior::Region ? 3 : 1;
          // P's size in N x N matrices: shared 1, region 3, block sum n_q^2 / N^2 = 1/3.
          const double p_mats = v.prior == fit::Prior::Block ? 1.0 / 3.0 : double(n_p);
          const double ws = mat * (1 + p_mats);
          const double bw = stream_gbs(comm, ws, true);
          const double floor_bytes = mat * (double(steps) + 0.5 * p_mats * double(learn));
          const double floor_s = floor_bytes / (bw * 1e9);
          double s = 0, peak = 0, start_s = 0;
          run_once(N, T, v, comm, s, peak, start_s);
          double model = fit::fit_bytes_per_rank(N, T, df, p, n_p);
          if (v.prior == fit::Prior::Block) {
            fit::Params pb;
            pb.set_time(0.1, df);
            pb.stop_when_flat = 0;
            fit::FitSizes sz;
            sz.n_units = N, sz.n_samples = T, sz.n_regions = 3, sz.ranks = p, sz.largest_region = (N + 2) / 3;
            sz.n_inputs = v.n_inputs;
            if (v.gated) pb.gains = fit::GainModel::Inputs;
            model = fit::fit_bytes_per_rank(sz, pb);
          }
          if (rank == 0) {
            std::printf("%6lld %-30s %8.2f %9.2f %9.2f %9.0f %9.1f ", (long long)N, v.name.c_str(), s, floor_s,
                        s / floor_s, ws / 1e6, bw);
            if (plain > 0) std::printf("%9.2f %9.2f", plain, plain / s);
            else std::printf("%9s %9s", "-", "-");
            std::printf(" %8.0f (planned %.0f)", peak / 1e6, model / 1e6);
            if (start_s > 0) std::printf("  start %.2f s = %.2f runs", start_s, start_s / s);
            std::printf("\n");
            std::fflush(stdout);
            timings.push_back({p, N, v.name, s, start_s});
          }
        }
      }
      MPI_Comm_free(&comm);
    }
    gentle_barrier(world);
  }
  // Strong scaling: the same animal on all ranks against 1 rank (a training run; the start too).
  if (rank == 0 && size > 1) {
    std::printf("\nstrong scaling, %d ranks against 1 (same N, same variant): speed-up = t1 / t%d, efficiency = "
                "speed-up / %d\n", size, size, size);
    for (const Timing& a : timings) {
      if (a.ranks != 1) continue;
      for (const Timing& b : timings)
        if (b.ranks == size && b.N == a.N && b.variant == a.variant) {
          std::printf("  N %6lld %-30s run %.2f -> %.2f s: speed-up %.2f, efficiency %.2f", (long long)a.N,
                      a.variant.c_str(), a.run_s, b.run_s, a.run_s / b.run_s, a.run_s / b.run_s / size);
          if (a.start_s > 0)
            std::printf("; start %.2f -> %.2f s: speed-up %.2f", a.start_s, b.start_s, a.start_s / b.start_s);
          std::printf("\n");
        }
    }
  }
  if (rank == 0)
    std::printf("\nReference Python (spec, measured on another machine of this kind): one training run N=1200 30.6 s, "
                "N=2400 184 s; bench/fit_vs_reference.sh times the same loop here, in the same run.\n");
  return 0;
}
