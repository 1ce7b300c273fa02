#pragma once
// Masked, distributed non-negative factorization X_a ~ W H_a (docs/modes.md).
//
// Every animal's matrix X_a is P x T_a (rows = region pairs of the cohort, columns = samples).
// Entries are observed or masked: a row the animal lacks is masked everywhere, and for cross-
// validation whole (row, time-block) pieces are held out. Masked entries never enter the fit.
//
// Fit: HALS (exact coordinate minimisation, so the masked objective never increases). Ranks own
// animals and update their H_a locally; the W step needs, per row p of W,
//   B_p = sum_a sum_{t observed} x_pt h_t   and   C_p = sum_a sum_{t observed} h_t h_t^T,
// obtained with ONE MPI_Allreduce per iteration. Because the mask of an animal is constant over a
// time block, C_p is a sum of per-block Grams S_ab = sum_{t in block b} h_t h_t^T.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cohortnet::modes {

struct AnimalMatrix {
  std::string id;
  std::uint64_t seed_id = 0;    // fixed per animal (its cohort index): names its random streams
  int T = 0;
  std::vector<int> regions;     // cohort indices of the regions this animal has
  std::vector<double> X;        // P x T row-major; masked entries are never read
  std::vector<std::uint8_t> present;   // P: 1 if the animal has both regions of the pair
  std::vector<int> block_start;        // block boundaries (n_blocks + 1), 0 ... T
  std::vector<std::uint8_t> heldout;   // P x n_blocks: 1 = this row's samples in the block are held out
  std::vector<int> states;             // optional behaviour state per sample (index into state names)

  int n_blocks() const { return int(block_start.size()) - 1; }
  bool observed(int p, int b) const {
    return present[size_t(p)] && !heldout[size_t(p) * size_t(n_blocks()) + size_t(b)];
  }
  // Resets the hold-out to one block without held-out entries.
  void clear_holdout();
};

// How the W-step sums are reduced over ranks.
//  ordered: every animal's contribution (B_a and its per-block Grams) has its own slot in the
//           Allreduce buffer (exactly one rank writes a slot, the others add zeros, so the sum is
//           exact); every rank then adds the slots in animal order. Bit-identical results at any
//           rank count. Buffer size grows with the number of animals.
//  sum:     each rank adds its animals' B and C first; the buffer is P*K*(K+1) doubles whatever
//           the number of animals. Results differ between rank counts by rounding.
enum class Reduction { ordered, sum };

struct FitOptions {
  int K = 4;
  int max_iter = 500;
  double tol = 1e-6;       // stop when the relative decrease of the objective is below this
  int inner = 2;           // HALS sweeps over H and W per outer iteration
  std::uint64_t seed = 1;
  std::uint64_t start = 0; // which random start (names the init stream)
  Reduction reduction = Reduction::ordered;
  // Ridge penalty h_ridge * |H|^2 in the H step (0 = none). Cross-validation fits use it: a mode
  // whose rows are mostly held out in a block would otherwise get an unbounded activation there.
  double h_ridge = 0;
};

struct FitResult {
  int P = 0, K = 0;
  std::vector<double> W;                 // P x K, columns unit norm
  std::vector<std::vector<double>> H;    // per animal K x T_a
  double objective = 0;                  // masked squared error at the end
  int iterations = 0;
  bool converged = false;
  double comm_bytes_per_iter = 0;        // Allreduce payload per iteration (bytes, per rank)
  double seconds_per_iter = 0;
};

// Step-wise masked HALS on a communicator (collective on comm). Every rank holds every animal's
// data (read-only, not copied); rank r owns a contiguous block of animals.
class MaskedHals {
 public:
  MaskedHals(std::vector<const AnimalMatrix*> animals, int P, const FitOptions& opt, MPI_Comm comm);
  void init_random();                        // W, H from Stream(seed, {kTagModes, start, ...})
  void set_W(const std::vector<double>& W);  // then H is re-initialised from its stream
  // W and every animal's H as given (W's columns normalised, H's rows scaled to keep W H).
  void set_state(const std::vector<double>& W, const std::vector<std::vector<double>>& H);
  // One outer iteration: H step (local), one Allreduce, W step, column normalisation. Returns the
  // masked objective at (previous W, new H), computed from the reduced sums.
  double step();
  // The exact masked objective at the current W, H (collective; one Allreduce).
  double objective() const;
  // Runs step() until converged or max_iter; returns the gathered result (collective).
  FitResult run();
  FitResult result() const;  // gathers every H on every rank (collective)
  const std::vector<double>& W() const { return W_; }
  double bytes_per_iter() const;
  bool owns(int i) const { return i >= own_begin_ && i < own_end_; }
  // Seconds spent so far in step(): local H step and sums, the Allreduce, the W step.
  double seconds_local = 0, seconds_reduce = 0, seconds_w = 0;

 private:
  void h_step(int i);
  void contributions(int i, double* B, double* S) const;
  std::vector<const AnimalMatrix*> animals_;
  int P_, K_;
  FitOptions opt_;
  MPI_Comm comm_;
  int own_begin_ = 0, own_end_ = 0;
  std::vector<double> W_;
  std::vector<std::vector<double>> H_;
  std::vector<std::uint8_t> row_has_data_;
  std::vector<size_t> slot_offset_;
  size_t slot_total_ = 0;
  double xx_ = 0;  // sum of squares of the observed data
  int iterations_ = 0;
  bool converged_ = false;
  double seconds_ = 0;
};

// Fits with opt.start = first_start ... first_start+n_starts-1 in turn on comm; keeps the lowest
// objective (ties: the earliest start). objectives (optional) gets every start's objective.
FitResult fit_best(const std::vector<const AnimalMatrix*>& animals, int P, FitOptions opt, int n_starts,
                   MPI_Comm comm, std::vector<double>* objectives = nullptr);

// The sparsest modes at the fit's objective (docs/modes.md, "Sparsifying step"): NMF's W is not
// unique where modes share pathways, and HALS from random starts ends at mixtures of them. For each
// ordered pair of modes (i, j), mode i loses the largest multiple a of mode j that keeps it
// non-negative up to a margin (a = min over j's support of (W_pi + 0.05) / W_pj), the activations
// of j take over a times those of i (W H unchanged but for the clipping), and `polish` HALS
// iterations follow; the candidate is kept when its objective is within `tolerance` of the
// original fit's and the L1 norm of W falls. Passes over all pairs until none is kept (at most
// 3 K). Collective on comm; every decision uses reduced values, so it does not depend on the rank
// count beyond the HALS's own. accepted (optional): how many candidates were kept.
FitResult sparsify(const std::vector<const AnimalMatrix*>& animals, int P, const FitOptions& opt, const FitResult& fit,
                   MPI_Comm comm, double tolerance = 0.01, int polish = 50, int* accepted = nullptr);

// Projection on fixed modes: non-negative H (K x T) minimising the masked error of one animal
// (local, no communication). Deterministic initialisation (least squares clipped at 0). ridge:
// + ridge |H|^2 (a mode seen on few kept rows of the animal cannot grow without bound).
std::vector<double> project(const AnimalMatrix& a, const std::vector<double>& W, int P, int K,
                            int max_iter = 500, double tol = 1e-8, double ridge = 0);

// Explained variance over the observed (not held-out) entries: 1 - SSE / SST, SST centred per row
// over that row's observed samples.
double r2_observed(const AnimalMatrix& a, const std::vector<double>& W, const std::vector<double>& H, int P, int K);
// Relative error over the held-out entries: sum (x - Wh)^2 / sum x^2. NaN if nothing is held out.
double heldout_error(const AnimalMatrix& a, const std::vector<double>& W, const std::vector<double>& H, int P, int K,
                     double* sse = nullptr, double* ss = nullptr);
// Exact masked objective sum over observed entries of (x - Wh)^2 (one animal, local).
double masked_sse(const AnimalMatrix& a, const std::vector<double>& W, const std::vector<double>& H, int P, int K);

// Cosine similarity between column i of A (P x K) and column j of B (P x K2), over rows where
// rows[p] != 0 (all rows if rows is empty). 0 if either column is zero there.
double column_cosine(const std::vector<double>& A, int KA, int i, const std::vector<double>& B, int KB, int j,
                     const std::vector<std::uint8_t>& rows = {});
// Hungarian-matched similarity: match[k] = column of B matched to column k of A; sim[k] its cosine.
void match_columns(const std::vector<double>& A, const std::vector<double>& B, int P, int K,
                   const std::vector<std::uint8_t>& rows, std::vector<int>& match, std::vector<double>& sim);

// Runs n independent tasks on split communicators: the ranks of comm form min(size, n) groups
// (rank r in group r % G), task i runs on group i % G, and every task's result (a vector of
// doubles, identical on the ranks of its group) is broadcast to every rank of comm. A task's
// result must not depend on the size of its group (the fits here guarantee that).
std::vector<std::vector<double>> run_tasks(MPI_Comm comm, int n,
                                           const std::function<std::vector<double>(int, MPI_Comm)>& task);

// Packs / unpacks a FitResult into a vector of doubles (for run_tasks).
std::vector<double> pack_fit(const FitResult& r);
FitResult unpack_fit(const std::vector<double>& v, const std::vector<const AnimalMatrix*>& animals);

}  // namespace cohortnet::modes
