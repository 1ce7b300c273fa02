#include "fit/curbd.hpp"

#include <algorithm>
#include <cmath>

#include "core/h5.hpp"
#include "fit/dense.hpp"
#include "fit/events.hpp"

namespace cohortnet::fit {

// Checkpoints: J, the learner's P (rls.hpp), W_in, the run history and, inside a run, the state;
// written atomically, each rank its rows; read back at any rank count.

std::string Trainer::fingerprint() const {
  // The animal's own input count (as the cohort's staleness check sees it in the file); the
  // smoothed copies of --input-smoothing are in the parameters' part.
  const int smoothed = params_.inputs_used() ? int(params_.input_smoothing.size()) : 0;
  return fit::fingerprint(params_, N_, T_, meta_.sample_interval, animal_index_, n_in_ / (1 + smoothed));
}

void Trainer::save_checkpoint(const std::string& path, const std::string& config_text) const {
  EventScope ev(events().checkpoint);
  h5::AtomicFile af(path, comm_);
  h5::File& f = af.file();
  {
    std::vector<double> jr = local_J();
    h5::write_rows(f, "/J", hsize_t(N_), hsize_t(N_), rows_, jr.data());
  }
  rls_->write(f);
  if (n_in_ > 0) h5::write_rows(f, "/W_in", hsize_t(N_), hsize_t(n_in_), rows_, Win_.data());
  h5::write_doubles(f, "/pvar", {hsize_t(pvar_.size())}, pvar_.data());
  h5::write_doubles(f, "/chi2", {hsize_t(chi2_.size())}, chi2_.data());
  h5::write_doubles(f, "/pvar_heldout", {hsize_t(pvar_held_.size())}, pvar_held_.data());
  if (params_.stop_used()) {
    // The stopping rule's state: where training ended, the start's score and the best run's J
    // (and W_in; best_run -1 with /best: the regression start).
    h5::set_attr(f, "/", "train_end", std::int64_t(train_end_));
    h5::set_attr(f, "/", "best_run", std::int64_t(best_run_));
    h5::set_attr(f, "/", "stop_reason", stop_reason_);
    h5::set_attr(f, "/", "start_score", start_score_);
    if (!best_J_.empty()) {
      h5::ensure_group(f, "/best");
      h5::write_rows(f, "/best/J", hsize_t(N_), hsize_t(N_), rows_, best_J_.data());
      if (n_in_ > 0) h5::write_rows(f, "/best/W_in", hsize_t(N_), hsize_t(n_in_), rows_, best_Win_.data());
    }
  }
  if (!gains_.empty()) write_gain_model(f, gains_);
  h5::set_attr(f, "/", "mid_iter", std::int64_t(mid_iter_));
  if (mid_iter_ > 0) {
    // Inside a run: the state x, the rates so far, and each rank's partial error sums (one row
    // per rank, so a resume at the same rank count adds them up in the same order).
    h5::ensure_group(f, "/mid");
    h5::write_rows(f, "/mid/x", hsize_t(N_), 1, rows_, mid_x_.data());
    std::vector<double> rl = local_rates();
    h5::write_rows(f, "/mid/rates", hsize_t(N_), hsize_t(T_), rows_, rl.data());
    const int rank = comm_rank(comm_), size = comm_size(comm_);
    h5::write_rows(f, "/mid/err_sq", hsize_t(size), hsize_t(T_), RowRange{rank, rank + 1}, mid_err_.data());
  }
  h5::set_attr(f, "/", "format", "cohortnet-fit-checkpoint");
  h5::set_attr(f, "/", "animal_id", meta_.animal_id);
  h5::set_attr(f, "/", "runs_done", std::int64_t(runs_done()));
  h5::set_attr(f, "/", "start_r2", start_r2_);
  h5::set_attr(f, "/", "fingerprint", fingerprint());
  // J, P and the rates are stored in the fit's unit order (UnitOrder), which load_checkpoint checks.
  h5::set_attr(f, "/", "unit_order", order_.is_file_order() ? "file" : "region");
  h5::set_attr(f, "/", "config", config_text);
  af.commit();
}

void Trainer::load_checkpoint(const std::string& path) {
  h5::File f = h5::open_read(path, comm_);
  const std::string fmt = h5::has_attr(f, "/", "format") ? h5::attr_string(f, "/", "format") : "";
  if (fmt != "cohortnet-fit-checkpoint") fail("checkpoint ", path, ": not a cohortnet fit checkpoint");
  const std::string id = h5::attr_string(f, "/", "animal_id");
  if (id != meta_.animal_id) fail("checkpoint ", path, ": belongs to animal ", id, ", not ", meta_.animal_id);
  const std::string fp = h5::attr_string(f, "/", "fingerprint");
  if (fp != fingerprint())
    fail("checkpoint ", path, " of animal ", id, " was written with other parameters (", fingerprint_diff(fp, fingerprint()),
         "); resume with the same options or start without --resume");
  {
    // A checkpoint from before units were grouped by region holds them in file order.
    const std::string was = h5::has_attr(f, "/", "unit_order") ? h5::attr_string(f, "/", "unit_order") : "file";
    const std::string now = order_.is_file_order() ? "file" : "region";
    if (was != now)
      fail("checkpoint ", path, " of animal ", id, " holds its units in ", was, " order, this fit in ", now,
           " order; start without --resume");
  }
  const std::int64_t done = h5::attr_int(f, "/", "runs_done");
  std::vector<double> pv = h5::read_doubles(f, "/pvar"), c2 = h5::read_doubles(f, "/chi2");
  if (std::int64_t(pv.size()) != done || std::int64_t(c2.size()) != done)
    fail("checkpoint ", path, ": /pvar and /chi2 must have runs_done = ", done, " entries");
  from_row_major(J_, m_, PetscInt(N_), h5::read_rows(f, "/J", rows_));
  rls_->read(f);
  if (n_in_ > 0) {
    if (!h5::exists(f, "/W_in")) fail("checkpoint ", path, ": dataset /W_in is missing");
    Win_ = h5::read_rows(f, "/W_in", rows_);
  }
  pvar_ = pv;
  chi2_ = c2;
  pvar_held_ = h5::exists(f, "/pvar_heldout") ? h5::read_doubles(f, "/pvar_heldout") : std::vector<double>(pv.size(), NAN);
  if (pvar_held_.size() != pv.size()) fail("checkpoint ", path, ": /pvar_heldout must have runs_done = ", done, " entries");
  if (params_.stop_used()) {
    train_end_ = int(h5::attr_int(f, "/", "train_end"));
    best_run_ = int(h5::attr_int(f, "/", "best_run"));
    stop_reason_ = h5::attr_string(f, "/", "stop_reason");
    start_score_ = h5::has_attr(f, "/", "start_score") ? h5::attr_double(f, "/", "start_score") : NAN;
    if (h5::exists(f, "/best/J")) {
      best_J_ = h5::read_rows(f, "/best/J", rows_);
      if (n_in_ > 0) best_Win_ = h5::read_rows(f, "/best/W_in", rows_);
    }
  }
  if (!gains_.empty()) gains_ = read_gain_model(f, path, gains_.M, gains_.C);
  started_ = true;
  start_r2_ = h5::has_attr(f, "/", "start_r2") ? h5::attr_double(f, "/", "start_r2") : NAN;
  mid_iter_ = h5::has_attr(f, "/", "mid_iter") ? int(h5::attr_int(f, "/", "mid_iter")) : 0;
  if (mid_iter_ < 0 || mid_iter_ > n_iter_) fail("checkpoint ", path, ": attribute mid_iter out of range");
  if (mid_iter_ > 0) {
    mid_x_ = h5::read_rows(f, "/mid/x", rows_);
    std::vector<double> rl = h5::read_rows(f, "/mid/rates", rows_);
    for (PetscInt i = 0; i < m_; ++i)
      for (std::int64_t t = 0; t < T_; ++t) R_[size_t(t) * size_t(m_) + size_t(i)] = rl[size_t(i) * size_t(T_) + size_t(t)];
    const int rank = comm_rank(comm_), size = comm_size(comm_);
    const auto d = h5::dims(f, "/mid/err_sq");
    if (d.size() != 2 || d[1] != hsize_t(T_)) fail("checkpoint ", path, ": /mid/err_sq must be [ranks x ", T_, "]");
    if (d[0] == hsize_t(size)) {
      mid_err_ = h5::read_rows(f, "/mid/err_sq", RowRange{rank, rank + 1});
    } else {  // written at another rank count: the sums go to rank 0 (equal up to rounding)
      std::vector<double> all = h5::read_doubles(f, "/mid/err_sq");
      mid_err_.assign(size_t(T_), 0.0);
      if (rank == 0)
        for (hsize_t q = 0; q < d[0]; ++q)
          for (std::int64_t t = 0; t < T_; ++t) mid_err_[size_t(t)] += all[size_t(q) * size_t(T_) + size_t(t)];
    }
  }
}

}  // namespace cohortnet::fit
