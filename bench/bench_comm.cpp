// bench_comm: the communication of one RNN step of the distributed CURBD fit (src/fit/trainer.cpp
// Trainer::run, src/fit/rls.cpp Rls::step_*) on the communicator of the run, at N = 600 .. 19200, beside the machine's own
// reference figures measured in the same run (MPI_Barrier latency, a local memcpy of N doubles,
// the fit's J r on this rank's rows), and the latency-bandwidth (alpha-beta) fit of the
// MPI_Allgatherv. Not a test (see bench/README.md).
//   mpirun -n P bench_comm [N ...]
//
// What the fit exchanges (read from Trainer::run and Rls::step_*): every RNN step one MPI_Allgatherv
// of the local rates (N doubles in total); every learning step (one RNN step in dtFactor) one more
// MPI_Allgatherv of k = P z: one with --prior block (the default: each unit's entry of k is its
// own region's, one gather serves every region) and --prior shared, M (number of regions) with
// --prior region; every 100 RNN steps one MPI_Allreduce of one int (the SIGTERM stop check). r.k, c and
// the divergence check are computed redundantly on every rank: no per-step scalar reduction. Per
// run: MPI_Allreduce of T doubles, of 1 double and of 4 ints (negligible against ~6000 steps).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "core/parallel.hpp"
#include "fit/kernels.hpp"

using namespace cohortnet;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kDtFactor = 5;      // RNN steps per learning step (the fit's usual --dt-factor)
constexpr int kStopEvery = 100;   // RNN steps between stop checks (fit/cohort.cpp)
constexpr double kBudget = 0.25;  // seconds of repetitions per measurement (then 30 .. 20000 reps)

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

// Repetition count: rank 0 times a few calls of f, every rank gets the same count.
template <class F>
int choose_reps(MPI_Comm comm, F&& f, int lo = 30, int hi = 20000, int probe = 5) {
  const double t0 = now_s();
  for (int i = 0; i < probe; ++i) f();
  double t = (now_s() - t0) / probe;
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
  int reps = t > 0 ? int(std::min(double(hi), kBudget / t)) : hi;
  return std::max(lo, std::min(hi, reps));
}

struct Stat {
  double med = 0, p90 = 0;
};

// Times reps calls of f back to back, without barriers inside the loop (as in the fit: the ranks
// meet only in the collectives). Each rank records every call; per call the slowest rank counts.
template <class F>
Stat time_loop(MPI_Comm comm, int reps, F&& f, int warm = 3) {
  std::vector<double> t(static_cast<size_t>(reps));
  for (int i = 0; i < warm; ++i) f();  // warm-up
  MPI_Barrier(comm);                // one barrier before the loop, none inside
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s();
    f();
    t[size_t(i)] = now_s() - t0;
  }
  MPI_Allreduce(MPI_IN_PLACE, t.data(), reps, MPI_DOUBLE, MPI_MAX, comm);
  std::sort(t.begin(), t.end());
  Stat s;
  s.med = t[t.size() / 2];
  s.p90 = t[std::min(t.size() - 1, size_t(0.9 * double(t.size())))];
  return s;
}

// Weighted least squares t = a + b x with weights 1/t^2 (relative errors: small and large messages
// count alike). Returns false when x has no spread.
bool fit_line(const std::vector<double>& x, const std::vector<double>& t, double& a, double& b) {
  double s = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = 1.0 / (t[i] * t[i]);
    s += w;
    sx += w * x[i];
    sy += w * t[i];
    sxx += w * x[i] * x[i];
    sxy += w * x[i] * t[i];
  }
  const double det = s * sxx - sx * sx;
  if (!(det > 0)) return false;
  b = (s * sxy - sx * sy) / det;
  a = (sy - b * sx) / s;
  return true;
}

struct Row {
  long long N = 0;
  Stat ag, step_one, step_region, jr;
  double memcpy_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<long long> sizes;
  int regions = 3;  // gathers of k per learning step of the full region prior (--prior region), second pattern
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--regions") == 0 && i + 1 < argc) regions = std::max(1, std::atoi(argv[++i]));
    else if (argv[i][0] != '-') sizes.push_back(std::atoll(argv[i]));
  }
  if (sizes.empty()) sizes = {600, 1200, 2400, 4800, 9600, 19200};
  Environment env(&argc, &argv);
  MPI_Comm comm = MPI_COMM_WORLD;
  const int rank = comm_rank(comm), p = comm_size(comm);
  int on_node = 0;
  {
    MPI_Comm node;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    on_node = comm_size(node);
    MPI_Comm_free(&node);
  }
  const unsigned cores = std::thread::hardware_concurrency();

  // ---- the machine's reference figures --------------------------------------------------------
  const Stat barrier = time_loop(comm, choose_reps(comm, [&] { MPI_Barrier(comm); }), [&] { MPI_Barrier(comm); });
  int flag = 0;
  auto stop_check = [&] {
    int st = flag;
    MPI_Allreduce(MPI_IN_PLACE, &st, 1, MPI_INT, MPI_MAX, comm);
    flag = st;
  };
  const Stat allreduce1 = time_loop(comm, choose_reps(comm, stop_check), stop_check);

  if (rank == 0) {
    double load[3] = {0, 0, 0};
    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
      std::fclose(f);
    }
    std::printf("bench_comm: %d rank(s), %d on this node, %u cores%s; dtFactor %d, full region prior M = %d\n", p,
                on_node, cores, (cores > 0 && unsigned(on_node) > cores) ? " (OVERSUBSCRIBED)" : "", kDtFactor,
                regions);
    std::printf("reference: MPI_Barrier median %.2f us (p90 %.2f); MPI_Allreduce(1 int) median %.2f us (p90 %.2f)\n",
                1e6 * barrier.med, 1e6 * barrier.p90, 1e6 * allreduce1.med, 1e6 * allreduce1.p90);
    std::printf("load average at start (other jobs on this machine): %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    std::printf("times: median and p90 over repetitions of the slowest rank per repetition; no barrier inside loops\n\n");
    std::fflush(stdout);
  }

  // Latency probes (small messages) for the alpha-beta fit, then the requested sizes.
  std::vector<long long> all = {8, 64};
  for (long long N : sizes) all.push_back(N);
  std::vector<Row> rows;
  for (long long N : all) {
    const bool probe = N < 100;
    std::vector<int> counts, offsets;
    row_layout(PetscInt(N), comm, counts, offsets);
    const int m = counts[size_t(rank)];
    const size_t ms = size_t(m), Ns = size_t(N);
    std::vector<double> rl(ms), kl(ms), r(Ns), k(Ns), src(Ns), dst(Ns);
    for (size_t i = 0; i < ms; ++i) rl[i] = kl[i] = std::tanh(double(i) * 1e-3);
    for (size_t j = 0; j < Ns; ++j) src[j] = double(j);
    auto gather = [&](const double* local, double* full) {
      MPI_Allgatherv(local, m, MPI_DOUBLE, full, counts.data(), offsets.data(), MPI_DOUBLE, comm);
    };
    Row row;
    row.N = N;
    auto one = [&] { gather(rl.data(), r.data()); };
    row.ag = time_loop(comm, choose_reps(comm, one), one);
    if (!probe) {
      // One learning cycle of the fit: dtFactor RNN steps, each gathers r; the learning step also
      // gathers k once per P block; the stop check every 100 RNN steps (every 20th cycle).
      int cycle_no = 0;
      auto cycle = [&](int blocks) {
        for (int s = 0; s < kDtFactor; ++s) gather(rl.data(), r.data());
        for (int b = 0; b < blocks; ++b) gather(kl.data(), k.data());
        if (++cycle_no % (kStopEvery / kDtFactor) == 0) stop_check();
      };
      auto one_k = [&] { cycle(1); };  // block and shared P: one gather of k
      auto region = [&] { cycle(regions); };
      row.step_one = time_loop(comm, choose_reps(comm, one_k), one_k);
      row.step_region = time_loop(comm, choose_reps(comm, region), region);
      row.step_one.med /= kDtFactor;
      row.step_one.p90 /= kDtFactor;
      row.step_region.med /= kDtFactor;
      row.step_region.p90 /= kDtFactor;
      // Reference: a local memcpy of N doubles (every rank its own copy, no MPI).
      const Stat mc = time_loop(MPI_COMM_SELF, 2000, [&] {
        std::memcpy(dst.data(), src.data(), Ns * sizeof(double));
        src[0] = dst[Ns - 1];  // keep the copies live
      });
      row.memcpy_s = mc.med;
      MPI_Allreduce(MPI_IN_PLACE, &row.memcpy_s, 1, MPI_DOUBLE, MPI_MAX, comm);
      // The compute of a plain RNN step: the fit's J r (kernels::gemv) on this rank's rows,
      // column-major m x N, all ranks at once (each with its own share of the memory bandwidth).
      {
        std::vector<double> J(ms * Ns), y(ms);
        for (size_t z = 0; z < J.size(); ++z) J[z] = 1e-3 * double(z % 1013);
        auto jr = [&] { fit::kernels::gemv(PetscInt(m), PetscInt(N), J.data(), PetscInt(std::max(1, m)), r.data(), y.data()); };
        row.jr = time_loop(comm, choose_reps(comm, jr, 3, 2000, 1), jr, 0);  // probe = warm-up
      }
    }
    rows.push_back(row);
    if (rank == 0 && !probe && rows.size() == 3) {
      std::printf("%6s %8s | %19s | %19s | %19s | %8s %7s | %10s %7s %9s\n", "", "", "one Allgatherv (us)",
                  "comm/step block P", "comm/step region P", "memcpy N", "", "J r rows", "", "");
      std::printf("%6s %8s | %9s %9s | %9s %9s | %9s %9s | %8s %7s | %10s %7s %9s\n", "N", "8N B", "median", "p90",
                  "median", "p90", "median", "p90", "dbl (us)", "ag/mcpy", "(us)", "GB/s/rk", "comm/J r");
    }
    if (rank == 0 && !probe) {
      const double jr_bytes = 8.0 * double(N) * double(N) / double(p);  // this rank's share of J (about)
      std::printf("%6lld %8lld | %9.2f %9.2f | %9.2f %9.2f | %9.2f %9.2f | %8.3f %7.1f | %10.1f %7.2f %9.2e\n", N,
                  8 * N, 1e6 * row.ag.med, 1e6 * row.ag.p90, 1e6 * row.step_one.med, 1e6 * row.step_one.p90,
                  1e6 * row.step_region.med, 1e6 * row.step_region.p90, 1e6 * row.memcpy_s,
                  row.ag.med / row.memcpy_s, 1e6 * row.jr.med, jr_bytes / row.jr.med / 1e9,
                  row.step_one.med / row.jr.med);
      std::fflush(stdout);
    }
  }

  // ---- alpha-beta fit of one MPI_Allgatherv: t = a + b x, x = (p-1)/p 8N bytes ------------------
  if (rank == 0) {
    std::printf("\nlatency probes: MPI_Allgatherv of 8 doubles %.2f us, of 64 doubles %.2f us\n", 1e6 * rows[0].ag.med,
                1e6 * rows[1].ag.med);
    if (p == 1) {
      std::printf("alpha-beta: 1 rank, MPI_Allgatherv is a local copy (no network); nothing to fit\n");
    } else {
      std::vector<double> x, t;
      for (const Row& rw : rows) {
        x.push_back(double(p - 1) / double(p) * 8.0 * double(rw.N));
        t.push_back(rw.ag.med);
      }
      double a = 0, b = 0;
      if (fit_line(x, t, a, b)) {
        const double stages = std::ceil(std::log2(double(p)));
        std::printf("alpha-beta fit of MPI_Allgatherv medians (weights 1/t^2, %zu sizes 8 .. %lld doubles):\n",
                    x.size(), rows.back().N);
        std::printf("  t = a + b (p-1)/p 8N:  a = %.2f us, b = %.4f ns/byte (1/b = %.2f GB/s)\n", 1e6 * a, 1e9 * b,
                    b > 0 ? 1e-9 / b : 0.0);
        std::printf("  alpha = a / ceil(log2 p) = %.2f us per stage (%.0f stages; = p-1 ring stages at p <= 3), "
                    "beta = b\n", 1e6 * a / stages, stages);
        std::printf("  a / barrier latency = %.2f\n", a / barrier.med);
        std::printf("  measured / fitted per N:");
        for (size_t i = 0; i < x.size(); ++i) std::printf(" %lld:%.2f", rows[i].N, t[i] / (a + b * x[i]));
        std::printf("\n");
      }
    }
    std::printf("\ncolumns: step = (dtFactor gathers of r + g gathers of k + stop check / 20) / dtFactor, "
                "i.e. the average communication per RNN step; block P (the default) and shared P: g = 1; full "
                "region P: g = M;\n  J r = the fit's gemv on this rank's rows (the compute of a plain RNN step; "
                "with the block prior and M regions a learning cycle reads (dtFactor + 1/M) J's worth);\n"
                "  GB/s/rk = 8 N^2/p bytes / J r time; comm/J r = comm per step (block P) / J r time;\n"
                "  ag/mcpy = one Allgatherv / a local memcpy of N doubles\n");
  }
  return 0;
}
