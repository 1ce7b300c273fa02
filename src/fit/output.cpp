#include "fit/curbd.hpp"

#include <algorithm>
#include <cmath>

#include "core/h5.hpp"
#include "core/log.hpp"
#include "decompose/decompose.hpp"
#include "fit/dense.hpp"
#include "fit/events.hpp"

namespace cohortnet::fit {

std::vector<double> Trainer::local_J() const { return to_row_major(J_, m_, PetscInt(N_)); }
int Trainer::n_p() const { return rls_->n_p(); }

std::vector<double> Trainer::local_P() const {
  if (rls_->kind() == Prior::Shared) return rls_->local_P(0);
  std::vector<double> out;
  for (int q = 0; q < n_p(); ++q) {
    std::vector<double> one = local_P(q);
    out.insert(out.end(), one.begin(), one.end());
  }
  return out;
}

std::vector<double> Trainer::local_P(int q) const { return rls_->local_P(q); }

std::vector<double> Trainer::local_rates() const {
  std::vector<double> out(size_t(m_) * size_t(T_));
  for (PetscInt i = 0; i < m_; ++i)
    for (std::int64_t t = 0; t < T_; ++t) out[size_t(i) * size_t(T_) + size_t(t)] = R_[size_t(t) * size_t(m_) + size_t(i)];
  return out;
}

std::vector<double> Trainer::full_rates() const {
  std::vector<double> loc = local_rates(), full(size_t(N_) * size_t(T_));
  // Counted in rows of T doubles, so the counts stay ints when N T exceeds 2^31 (80k units x 30k samples).
  MPI_Datatype row;
  MPI_Type_contiguous(int(T_), MPI_DOUBLE, &row);
  MPI_Type_commit(&row);
  MPI_Allgatherv(loc.data(), int(m_), row, full.data(), counts_.data(), offsets_.data(), row, comm_);
  MPI_Type_free(&row);
  return full;
}

const FitQuality& Trainer::evaluate() {
  FitQuality q;
  q.evaluated = true;
  q.split = params_.split_used();
  q.split_description = split_.description;
  q.horizon = horizon_;
  q.ac = ac_;
  const Rows D = Rows::time_major_of(D_.data(), m_, T_);
  {
    const Rows R = Rows::time_major_of(R_.data(), m_, T_);
    q.train = pvar_score(D, R, split_, resets_, Part::Train, comm_);
    if (q.split) q.held = pvar_score(D, R, split_, resets_, Part::HeldOut, comm_);
    q.sat = saturation(R, D, split_, q.split ? Part::HeldOut : Part::Train, comm_);
  }
  // The honest free run: the same J without the input noise it was trained with (and fitted).
  {
    const std::vector<double> keep = R_;
    const RunStats s = run(true);
    const Rows R = Rows::time_major_of(R_.data(), m_, T_);
    q.pvar_noise_free = s.pvar;
    q.train_noise_free = pvar_score(D, R, split_, resets_, Part::Train, comm_);
    if (q.split) q.held_noise_free = pvar_score(D, R, split_, resets_, Part::HeldOut, comm_);
    R_ = keep;
  }
  if (q.split) {
    // Above kMaxVarPairs training pairs (quality.hpp) only the unit mean is compared (recorded).
    std::int64_t pairs = 0;
    for (const Segment& g : split_.segments)
      if (!g.held_out) pairs += g.end - g.begin - 1;
    if (pairs <= kMaxVarPairs) {
      q.base = baselines(D, split_, horizon_, comm_);
    } else {
      Baselines b;
      b.horizon = horizon_;
      b.var_pairs = pairs;
      const std::vector<double> pm = predict_mean(D, split_);
      b.mean = pvar_score(D, Rows::row_major(pm.data(), m_, T_), split_, resets_, Part::HeldOut, comm_);
      b.var.all = b.var.non_reset = -INFINITY;  // not computed: never the best
      q.base = b;
      log::warn(comm_, meta_.animal_id, ": ", pairs, " training pairs: the VAR(1) baseline (P x P Gram matrix) is left "
                "out above ", kMaxVarPairs, "; compared with the unit mean only");
    }
  }
  FitEvidence e;
  e.held_out_pvar = q.split ? q.held.non_reset : NAN;
  if (q.base) {
    e.best_baseline = q.base->best_non_reset();
    e.baseline_name = q.base->best_name();
  }
  e.run_pvar.assign(pvar_.begin(), pvar_.begin() + std::min<size_t>(pvar_.size(), size_t(runs_train_used())));
  e.sat = q.sat;
  q.verdict = classify_fit(e);
  if (!q.split && q.verdict.status == FitStatus::Poor)
    q.verdict.reason = "no held-out split (--holdout none): not compared with any baseline";
  quality_ = q;
  return quality_;
}

void Trainer::write_result(const std::string& path, const std::string& config_text, bool per_unit_currents) const {
  StageScope stage(events().output);
  EventScope ev(events().write);
  h5::AtomicFile af(path, comm_);
  h5::File& f = af.file();
  const int M = meta_.n_regions();
  std::vector<double> jr = local_J();
  // Everything per unit is written in the file's unit order (the fit may hold its units grouped
  // by region: UnitOrder); the region-level results do not depend on the order.
  const UnitOrder::FileRows fr = order_.file_rows(rows_);
  auto write_units = [&](const char* name, std::int64_t cols, const double* local, bool cols_are_units) {
    if (order_.is_file_order()) h5::write_rows(f, name, hsize_t(N_), hsize_t(cols), rows_, local);
    else h5::write_row_runs(f, name, hsize_t(N_), hsize_t(cols), fr.runs,
                            order_.to_file_order(fr, local, cols, cols_are_units).data());
  };
  const std::vector<double> rl = local_rates();
  write_units("/rates", T_, rl.data(), false);
  h5::write_doubles(f, "/pvar", {hsize_t(pvar_.size())}, pvar_.data());
  h5::write_doubles(f, "/chi2", {hsize_t(chi2_.size())}, chi2_.data());
  h5::write_doubles(f, "/target_scale", {hsize_t(M)}, scale_.data());
  h5::write_strings(f, "/region_names", meta_.region_names);
  {
    std::vector<std::int64_t> ur(meta_.unit_region.size());
    for (size_t k = 0; k < ur.size(); ++k) ur[size_t(order_.file_index(std::int64_t(k)))] = meta_.unit_region[k];
    h5::write_ints(f, "/unit_region", {hsize_t(ur.size())}, ur.data());
    // How the fit held its units (the output is in file order either way).
    h5::set_attr(f, "/", "unit_order", order_.is_file_order() ? "file" : "region");
    h5::write_ints(f, "/trial_starts", {hsize_t(meta_.trial_starts.size())}, meta_.trial_starts.data());
  }
  {
    // By rows: the rates gathered a time chunk at a time, each target region's summaries on one
    // rank (no N T or M^2 T term on every rank: src/fit/memory.cpp).
    std::vector<double> per_unit;
    const std::vector<double> g = gains_at_samples();
    const decompose::RegionCurrentsPart c = decompose::region_currents_by_rows(
        jr.data(), rows_, N_, rl.data(), T_, meta_.unit_region, M, comm_, per_unit_currents ? &per_unit : nullptr, 0,
        g.empty() ? nullptr : g.data());
    // Each pathway's strength (decompose.hpp): the scale the fitted gains (rms 1 per pathway) do
    // not carry; `modes --summary pathways` factors gains x strength.
    h5::write_doubles(f, "/pathway_strength", {hsize_t(M), hsize_t(M)}, c.strength.data());
    h5::set_attr(f, "/pathway_strength", "definition", kPathwayStrengthDefinition);
    if (!g.empty()) {
      h5::write_doubles(f, "/gains", {hsize_t(M), hsize_t(M), hsize_t(T_)}, g.data());
      h5::set_attr(f, "/gains", "layout", "[target region, source region, sample]: J_eff(t)[Q,S] = gains[Q,S,t] J[Q,S]");
      write_gain_model(f, gains_);
      // What the gains are linear in: the input channels, or the latent factors (gain_drivers.cpp).
      std::vector<double> drv(size_t(n_drv_) * size_t(T_));
      for (std::int64_t t = 0; t < T_; ++t)
        for (int k = 0; k < n_drv_; ++k) drv[size_t(k) * size_t(T_) + size_t(t)] = Gd_[size_t(t) * size_t(n_drv_) + size_t(k)];
      h5::write_doubles(f, "/gains_model/drivers", {hsize_t(n_drv_), hsize_t(T_)}, drv.data());
      h5::write_strings(f, "/gains_model/driver_names", driver_names_);
      h5::set_attr(f, "/gains_model/drivers", "definition",
                   params_.latent_gains()
                       ? "[factor, sample]: the latent factors of the activity the gains are linear in (--gains latent:K)"
                       : "[input channel, sample]: the input channels the gains are linear in (--gains inputs)");
    }
    decompose::write_currents(f, c, meta_.region_names);
    if (per_unit_currents) {
      write_units("/currents/per_unit", std::int64_t(M) * T_, per_unit.data(), false);
      h5::set_attr(f, "/currents/per_unit", "layout", "[unit, source region * T + sample]");
    }
  }
  // J last: put into file order in place (no second m x N copy), then written.
  order_.to_file_order_in_place(fr, jr, N_, true);
  if (order_.is_file_order()) h5::write_rows(f, "/J", hsize_t(N_), hsize_t(N_), rows_, jr.data());
  else h5::write_row_runs(f, "/J", hsize_t(N_), hsize_t(N_), fr.runs, jr.data());
  jr.clear();
  if (n_in_ > 0) {
    // Input channels: their weights and the input currents W_in[i,c] u_c(t), per target region.
    write_units("/W_in", n_in_, Win_.data(), false);
    h5::write_strings(f, "/input_names", meta_.input_names);
    std::vector<double> inputs(size_t(n_in_) * size_t(T_));
    for (int c = 0; c < n_in_; ++c)
      for (std::int64_t t = 0; t < T_; ++t) inputs[size_t(c) * size_t(T_) + size_t(t)] = U_[size_t(t) * size_t(n_in_) + size_t(c)];
    std::vector<double> per_unit;
    const decompose::InputCurrents ic =
        decompose::input_currents(Win_.data(), rows_, N_, n_in_, inputs.data(), T_, meta_.unit_region, M, comm_,
                                  per_unit_currents ? &per_unit : nullptr);
    decompose::write_input_currents(f, ic, meta_.input_names);
    if (per_unit_currents) {
      write_units("/currents/input_per_unit", std::int64_t(n_in_) * T_, per_unit.data(), false);
      h5::set_attr(f, "/currents/input_per_unit", "layout", "[unit, input * T + sample]");
    }
  }
  h5::set_attr(f, "/", "format", "cohortnet-fit");
  h5::set_attr(f, "/", "format_version", std::int64_t(1));
  h5::set_attr(f, "/", "animal_id", meta_.animal_id);
  h5::set_attr(f, "/", "source", meta_.path);
  h5::set_attr(f, "/", "seed", std::int64_t(params_.seed));
  h5::set_attr(f, "/", "animal_index", std::int64_t(animal_index_));
  h5::set_attr(f, "/", "sample_interval", meta_.sample_interval);
  h5::set_attr(f, "/", "dt_factor", std::int64_t(params_.dt_factor));
  h5::set_attr(f, "/", "normalise", normalise_name(params_.normalise));
  h5::set_attr(f, "/", "alignment", params_.reference_compat ? "reference-compat" : "integer");
  h5::set_attr(f, "/", "prior", prior_name(params_.prior_used()));
  h5::set_attr(f, "/", "prior_ratio", params_.per_region_p() ? params_.prior_ratio_used() : 1.0);
  h5::set_attr(f, "/", "inputs", std::int64_t(n_in_));
  h5::set_attr(f, "/", "start", params_.starts_from_regression() ? "regression" : "random");
  // Gated pathways: the model, and how many target regions kept their gains (the others: gain 1).
  h5::set_attr(f, "/", "gains", gains_.empty() ? "none" : params_.latent_gains() ? cat("latent:", n_drv_) : std::string("inputs"));
  if (!gains_.empty())
    h5::set_attr(f, "/", "gains_kept", std::int64_t(std::count(gains_.kept.begin(), gains_.kept.end(), 1)));
  if (params_.starts_from_regression()) {
    h5::set_attr(f, "/", "start_p0", params_.start_p0);
    h5::set_attr(f, "/", "start_ratio", params_.per_region_p() ? params_.start_ratio : 1.0);
    h5::set_attr(f, "/", "start_r2", start_r2_);
  }
  h5::set_attr(f, "/", "target_std", sigma_);
  h5::set_attr(f, "/", "runs_train", std::int64_t(params_.runs_train));
  h5::set_attr(f, "/", "runs_free", std::int64_t(params_.runs_free));
  h5::set_attr(f, "/", "final_pvar", pvar_.empty() ? 0.0 : pvar_.back());
  h5::set_attr(f, "/", "tau_rnn", params_.tau_rnn);
  h5::set_attr(f, "/", "tau_rnn_from_data", std::int64_t(params_.tau_rnn_auto ? 1 : 0));
  h5::set_attr(f, "/", "dt_factor_from_data", std::int64_t(params_.dt_factor_auto ? 1 : 0));
  if (ac_.units > 0) {
    h5::set_attr(f, "/", "autocorrelation_time", ac_.tau_samples);  // samples, median over units
    h5::set_attr(f, "/", "autocorrelation_time_mean", ac_.mean_samples);
  }
  h5::set_attr(f, "/", "holdout", split_.description);
  h5::set_attr(f, "/", "horizon", std::int64_t(horizon_));
  h5::write_doubles(f, "/pvar_heldout", {hsize_t(pvar_held_.size())}, pvar_held_.data());
  if (params_.stop_used()) {
    h5::set_attr(f, "/", "runs_train_done", std::int64_t(runs_train_used()));
    // 1-based; 0: the regression start was kept (training did not beat it).
    h5::set_attr(f, "/", "best_run", std::int64_t(best_run_ + 1));
    h5::set_attr(f, "/", "start_score", start_score_);
    // The held-out pVar also chose which run's J is kept (a selection among the runs scored), so
    // it is slightly optimistic for the kept J; recorded so a reader can tell (docs/fit.md).
    h5::set_attr(f, "/", "heldout_selects_run", std::int64_t(params_.split_used() ? 1 : 0));
    h5::set_attr(f, "/", "stop_reason", stop_reason_);
  }
  if (quality_.evaluated) {
    const FitQuality& q = quality_;
    h5::set_attr(f, "/", "status", to_string(q.verdict.status));
    h5::set_attr(f, "/", "status_reason", q.verdict.reason);
    h5::set_attr(f, "/", "pvar_train", q.train.all);
    h5::set_attr(f, "/", "pvar_train_nonreset", q.train.non_reset);
    h5::set_attr(f, "/", "pvar_noise_free", q.pvar_noise_free);
    h5::set_attr(f, "/", "saturation", q.sat.model);
    if (q.split) {
      h5::set_attr(f, "/", "pvar_heldout", q.held.all);
      h5::set_attr(f, "/", "pvar_heldout_nonreset", q.held.non_reset);
      h5::set_attr(f, "/", "pvar_noise_free_heldout_nonreset", q.held_noise_free.non_reset);
    }
    if (q.base) {
      h5::set_attr(f, "/", "baseline_mean", q.base->mean.non_reset);
      h5::set_attr(f, "/", "baseline_var", q.base->var.non_reset);
      h5::set_attr(f, "/", "baseline_var_ridge", q.base->var_ridge);
      if (q.base->trial_avg) h5::set_attr(f, "/", "baseline_trial_average", q.base->trial_avg->non_reset);
      h5::set_attr(f, "/", "baseline_best", q.base->best_non_reset());
      h5::set_attr(f, "/", "baseline_best_name", q.base->best_name());
    }
  }
  h5::set_attr(f, "/", "fingerprint", fingerprint());
  h5::set_attr(f, "/", "config", config_text);
  af.commit();
}

}  // namespace cohortnet::fit
