// A held-out evaluation of today's `cohortnet fit` at horizon K, before the trainer has one
// (issue 15; docs/fit.md "Fit quality: in sample and held out"). Three steps around the CLI:
//   split ANIMAL.h5 DIR K   the fit's target D (activity / global max, clipped) of the whole
//                           recording, cut into DIR/train/<id>.h5 (first two thirds) and
//                           DIR/heldout/<id>.h5 (last third), both with trial starts every K
//                           samples (the trainer resets there: horizon K) -> fit with
//                           --normalise none
//   init FIT.h5 L OUT.h5    /J0 = the fit's /J, /inputWN = 0 [N x L] (a noise-free run)
//   score HELDOUT.h5 FIT.h5 K   pVar of the fit's /rates against the held-out target, all samples
//                           and non-reset ones (quality.hpp's pvar_score), and the baselines
// Commands: bench/README.md.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/parallel.hpp"
#include "fit/quality.hpp"
#include "io/animal.hpp"

using namespace cohortnet;
using namespace cohortnet::fit;

namespace {

// Trial starts 0, K, 2K, ... (K <= 0: only 0).
std::vector<std::int64_t> every(std::int64_t T, std::int64_t K) {
  std::vector<std::int64_t> s;
  for (std::int64_t t = 0; t < T; t += (K > 0 ? K : T)) s.push_back(t);
  return s;
}

// Columns [b, e) of this rank's rows.
std::vector<double> columns(const std::vector<double>& x, std::int64_t rows, std::int64_t T, std::int64_t b,
                            std::int64_t e) {
  std::vector<double> out;
  for (std::int64_t i = 0; i < rows; ++i)
    out.insert(out.end(), x.begin() + i * T + b, x.begin() + i * T + e);
  return out;
}

void split(const std::string& path, const std::string& dir, std::int64_t K, MPI_Comm comm) {
  const AnimalData d = read_animal(path, comm);
  const std::int64_t T = d.meta.n_samples, m = d.rows.count();
  double mx = -INFINITY;
  for (double v : d.activity) mx = std::max(mx, v);
  MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, comm);
  std::vector<double> D(d.activity.size());
  for (size_t k = 0; k < D.size(); ++k) D[k] = std::clamp(d.activity[k] / mx, -0.999, 0.999);
  const Split s = make_split(T, {0}, {}, {SplitMode::End});
  const std::int64_t cut = s.segments.back().begin;
  for (int part = 0; part < 2; ++part) {
    const std::int64_t b = part == 0 ? 0 : cut, e = part == 0 ? cut : T;
    AnimalMeta meta = d.meta;
    meta.n_samples = e - b;
    meta.trial_starts = every(e - b, K);
    meta.behaviour.clear();
    meta.behaviour_names.clear();
    meta.input_names.clear();
    const std::string sub = dir + (part == 0 ? "/train" : "/heldout");
    if (comm_rank(comm) == 0) std::filesystem::create_directories(sub);
    MPI_Barrier(comm);
    write_animal(sub + "/" + meta.animal_id + ".h5", meta, d.rows, columns(D, m, T, b, e), {}, comm);
  }
  if (comm_rank(comm) == 0)
    std::printf("split %s: train samples 0-%lld, held out %lld-%lld, trial starts every %lld (target / %g)\n",
                d.meta.animal_id.c_str(), (long long)cut - 1, (long long)cut, (long long)T - 1, (long long)K, mx);
}

void init(const std::string& fit, std::int64_t L, const std::string& out, MPI_Comm comm) {
  h5::File f = h5::open_read(fit, comm);
  const std::vector<hsize_t> dims = h5::dims(f, "/J");
  const std::int64_t N = std::int64_t(dims[0]);
  const RowRange rows = own_rows(PetscInt(N), comm);
  const std::vector<double> J = h5::read_rows(f, "/J", rows);
  h5::close(f);
  h5::File o = h5::create(out, comm);
  h5::write_rows(o, "/J0", hsize_t(N), hsize_t(N), rows, J.data());
  const std::vector<double> zeros(size_t(rows.count() * L), 0.0);
  h5::write_rows(o, "/inputWN", hsize_t(N), hsize_t(L), rows, zeros.data());
  h5::close(o);
}

void score(const std::string& heldout, const std::string& fit, std::int64_t K, MPI_Comm comm) {
  const AnimalData d = read_animal(heldout, comm);
  const std::int64_t T = d.meta.n_samples, m = d.rows.count();
  h5::File f = h5::open_read(fit, comm);
  const std::vector<double> R = h5::read_rows(f, "/rates", d.rows);
  h5::close(f);
  // Every sample is scored: one held-out segment, resets every K (the trial starts).
  Split s;
  s.T = T;
  s.held_out.assign(size_t(T), 1);
  s.segments = {{0, T, true}};
  s.resets = {0};
  const std::vector<std::int64_t> resets = horizon_resets(s, K);
  const Rows Dv = Rows::row_major(d.activity.data(), m, T), Rv = Rows::row_major(R.data(), m, T);
  const Score sc = pvar_score(Dv, Rv, s, resets, Part::HeldOut, comm);
  if (comm_rank(comm) == 0)
    std::printf("%s: held-out pVar at K %lld: all %.4f, non-reset %.4f (%lld / %lld samples)\n",
                d.meta.animal_id.c_str(), (long long)K, sc.all, sc.non_reset, (long long)sc.n_all,
                (long long)sc.n_non_reset);
}

}  // namespace

int main(int argc, char** argv) {
  Environment env(&argc, &argv);
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "split" && argc == 5) split(argv[2], argv[3], std::stoll(argv[4]), MPI_COMM_WORLD);
    else if (mode == "init" && argc == 5) init(argv[2], std::stoll(argv[3]), argv[4], MPI_COMM_WORLD);
    else if (mode == "score" && argc == 5) score(argv[2], argv[3], std::stoll(argv[4]), MPI_COMM_WORLD);
    else fail("usage: bench_heldout_fit split ANIMAL.h5 DIR K | init FIT.h5 L OUT.h5 | score HELDOUT.h5 FIT.h5 K");
  } catch (const Error& e) {
    if (comm_rank(MPI_COMM_WORLD) == 0) std::fprintf(stderr, "bench_heldout_fit: %s\n", e.what());
    return 1;
  }
  return 0;
}
