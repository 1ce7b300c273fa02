#pragma once
// The RLS learner of one animal's fit: the inverse correlation matrices P and the gains a
// learning step gives J's rows (docs/fit.md, "Prior"). Three storages, one interface:
//   Shared  one N x N P for every row of J (the reference);
//   Region  one full N x N P_Q per target region Q (its rows learn from every source);
//   Block   one n_Q x n_Q P_Q per target region (Q's rows learn only from Q's own sources and
//           the inputs): Region at prior ratio 0 exactly, in sum_Q n_Q^2 memory, one all-gather
//           of k per learning step instead of M.
// Each P is split by the rows of J (this rank holds the rows of P_Q that belong to its own rows
// of J, plus a replicated copy of the small input rows). With input channels the RLS runs on
// z = [r; u]. The rank-1 updates of P stay pending for up to B steps and are applied in one pass
// fused with the next product (kernels.hpp); J's terms (kept by the trainer) share P's row
// vectors c k, so this class also holds the row vectors J's pending terms use.
#include <mpi.h>
#include <petscmat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/parallel.hpp"
#include "fit/kernels.hpp"
#include "fit/params.hpp"

namespace cohortnet::fit {

// The fit stopped because J or P stopped being finite or P lost its positive diagonal.
class Diverged : public Error {
 public:
  explicit Diverged(const std::string& what) : Error(what) {}
};

// Who holds which units: the global layout every part of the fit shares.
struct UnitLayout {
  MPI_Comm comm = MPI_COMM_NULL;
  PetscInt N = 0;                  // units
  RowRange rows;                   // this rank's rows of J
  std::vector<int> counts, offsets;  // every rank's rows (all-gathers)
  std::vector<int> unit_region;    // per unit (global)
  int n_regions = 0;
  std::vector<std::string> region_names;
  PetscInt m() const { return rows.count(); }
};

class Rls {
 public:
  // kind: Shared, Region or Block (Params::prior_used()); n_in input channels; B: --update-block.
  Rls(Prior kind, const UnitLayout& layout, int n_in, int update_block);
  ~Rls();
  Rls(const Rls&) = delete;
  Rls& operator=(const Rls&) = delete;

  // P = diag(p0 for own-region sources, p0 * ratio for other regions'; shared: p0 I), the input
  // part p0 I. Nothing pending afterwards.
  void set_prior(double p0, double ratio);

  // One learning step on z = [r; u] (r: full rates, u: the inputs or null): k = P z for every P
  // (applying a full block of pending terms on the way), c = 1 / (1 + z.k), the input parts'
  // updates, and term count() of the row vectors c k (J's and P's). Throws Diverged naming the
  // animal, run and sample (run < 0: the regression start).
  void step(const double* r, const double* u, const std::string& animal, int run, std::int64_t sample);
  int count() const { return count_; }  // pending terms (J's terms are in step with them)
  // A checkpoint may be taken only with P's block empty or full: applying it then is the same
  // arithmetic as the fused pass, so a resumed run continues bit for bit.
  bool quiet() const { return count_ == 0 || count_ == B_; }
  void flush();  // applies P's pending terms

  // For J's pending terms (the trainer): term s of slot g is row vector j_row(s, g) (length N);
  // J's local rows read the slot of their segment (j_segments()).
  const double* j_rows() const { return Sj_.data(); }
  int j_slots() const { return slots_; }
  const std::vector<kernels::Segment>& j_segments() const { return j_segs_; }
  // dots[s * j_slots() + g] = j_row(s, g) . x for s < nu, for the slots of j_segments().
  void j_dots(int nu, const double* x, double* dots) const;
  // c k_u of the last step for the P of local row i (W_in's update: W_in[i] -= e_i c k_u).
  const double* input_gain(PetscInt local_row) const;

  // Checks: every entry finite and each P's diagonal positive (>= 0 for other regions' sources
  // at ratio 0). Returns {finite, diagonal ok} for this rank.
  std::pair<bool, bool> healthy() const;

  // ---- checkpoints and tests ----
  int n_p() const;  // P matrices (Shared: 0 for the old layout's sake; Region/Block: M)
  // This rank's rows of P_q (Region: rows x N; Block: rows of q x n_q; Shared q = 0: rows x N).
  std::vector<double> local_P(int q) const;
  // Checkpoint datasets (/P, /P_region/q, /P_block/q, /P_inputs/...). Collective.
  void write(const h5::File& f) const;
  void read(const h5::File& f);
  Prior kind() const { return kind_; }

 private:
  struct Slot;  // Block: one target region's local rows
  void step_full(const double* r, const double* u, const std::string& animal, int run, std::int64_t sample);
  void step_block(const double* r, const double* u, const std::string& animal, int run, std::int64_t sample);
  double gain(double rk, const std::string& animal, int run, std::int64_t sample, int q) const;

  Prior kind_;
  UnitLayout L_;
  int n_in_ = 0, B_ = 1, count_ = 0;
  PetscInt m_ = 0;
  std::vector<int> row_group_;  // per local row: its P (region, or 0 for the shared P)
  // J's row vectors c k per pending term and slot (B x slots x N) and its segments.
  int slots_ = 1;
  std::vector<double> Sj_;
  std::vector<kernels::Segment> j_segs_;
  std::vector<double> kl_, k_;  // this rank's entries of k, and the gathered k
  mutable std::vector<double> dots_;

  // Shared / Region: P_rr as PETSc matrices (rows split like J), P_ru local rows' input columns
  // (m x n_in) and the replicated input rows [P_ur P_uu] (n_in x (N + n_in)) per P; P's pending
  // terms: local columns U (B x m) per P (row vectors: Sj_).
  std::vector<Mat> P_;
  std::vector<std::vector<double>> pru_, pu_, U_;
  std::vector<double> ku_, kuq_;  // k_u of one P; c k_u of the last step per P (or slot)

  // Block: per target region q its sources (global units, ascending) and the replicated input
  // rows (n_in x (n_q + n_in)); per local slot its rows, P block (m_s x (n_q + n_in), column-major;
  // the input columns inside), pending columns and compact row vectors c [k_q; k_u].
  std::vector<std::vector<PetscInt>> src_;
  std::vector<std::vector<double>> pub_;
  std::vector<Slot*> slot_;
  std::vector<int> slot_of_;  // per region: its slot on this rank, or -1
};

}  // namespace cohortnet::fit
