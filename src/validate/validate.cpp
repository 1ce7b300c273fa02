#include "validate/validate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/parallel.hpp"
#include "decompose/decompose.hpp"

namespace cohortnet::validate {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double corr(const double* a, const double* b, std::int64_t n) {
  double ma = 0, mb = 0;
  for (std::int64_t t = 0; t < n; ++t) {
    ma += a[t];
    mb += b[t];
  }
  ma /= double(n);
  mb /= double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (std::int64_t t = 0; t < n; ++t) {
    sab += (a[t] - ma) * (b[t] - mb);
    saa += (a[t] - ma) * (a[t] - ma);
    sbb += (b[t] - mb) * (b[t] - mb);
  }
  if (!(saa > 0) || !(sbb > 0)) return kNaN;
  return sab / std::sqrt(saa * sbb);
}

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

double auc(const std::vector<double>& score, const std::vector<int>& label) {
  double pos = 0, neg = 0, wins = 0;
  for (size_t i = 0; i < score.size(); ++i) {
    if (!std::isfinite(score[i])) continue;
    if (label[i]) pos += 1;
    else neg += 1;
  }
  if (pos == 0 || neg == 0) return kNaN;
  for (size_t i = 0; i < score.size(); ++i) {
    if (!label[i] || !std::isfinite(score[i])) continue;
    for (size_t j = 0; j < score.size(); ++j) {
      if (label[j] || !std::isfinite(score[j])) continue;
      wins += score[i] > score[j] ? 1.0 : (score[i] == score[j] ? 0.5 : 0.0);
    }
  }
  return wins / (pos * neg);
}

Run evaluate(const sim::SimulatedAnimal& a, const std::vector<double>& J_rows, RowRange rows,
             const std::vector<double>& rates, MPI_Comm comm, const std::vector<double>* gains,
             const std::vector<int>* kept) {
  const std::int64_t N = a.meta.n_units, T = a.meta.n_samples;
  const int M = a.meta.n_regions();
  const auto& reg = a.meta.unit_region;
  const size_t MM = size_t(M) * size_t(M);
  Run out;
  out.M = M;
  out.regions = a.meta.region_names;
  out.coupled = a.pair_coupled;
  for (int q = 0; q < M; ++q) out.coupled[size_t(q) * size_t(M) + size_t(q)] = 1;

  std::vector<double> per_unit;
  if (gains && gains->size() != MM * size_t(T)) fail("internal: validate got gains of the wrong shape");
  // Gated fits: the currents are the gated ones (gains[q, s, t] J_QS r_S(t)), as the fit writes them.
  const decompose::RegionCurrents c = decompose::region_currents(J_rows.data(), rows, N, rates.data(), T, reg, M,
                                                                 comm, &per_unit, gains ? gains->data() : nullptr);

  // Per unit and source region: correlation over time (NaN where the unit does not truly receive
  // that source), and sums of squares of inferred and true current. Each unit is owned by one
  // rank; the reduction fills in the others' (zeros elsewhere).
  const size_t NM = size_t(N) * size_t(M);
  // ss: sums of squares of inferred and true current over all of Q's units, then over the
  // receiving units only.
  std::vector<double> ucorr(NM, 0.0), uvalid(NM, 0.0), ss(4 * MM, 0.0);
  std::vector<double> pool(6 * MM, 0.0);  // pooled over receiving units x time: n, Sa, Sb, Saa, Sbb, Sab
  std::vector<double> tru(static_cast<size_t>(T));
  for (PetscInt i = 0; i < rows.count(); ++i) {
    const std::int64_t u = rows.begin + i;
    const int q = reg[size_t(u)];
    for (int s = 0; s < M; ++s) {
      std::fill(tru.begin(), tru.end(), 0.0);
      bool receives = false;
      for (std::int64_t j = 0; j < N; ++j) {
        if (reg[size_t(j)] != s) continue;
        const double w = a.J[size_t(u) * size_t(N) + size_t(j)];
        if (w == 0) continue;
        receives = true;
        const double* rj = &a.rates[size_t(j) * size_t(T)];
        for (std::int64_t t = 0; t < T; ++t) tru[size_t(t)] += w * rj[t];
      }
      const double* g = &a.gains[(size_t(q) * size_t(M) + size_t(s)) * size_t(T)];
      for (std::int64_t t = 0; t < T; ++t) tru[size_t(t)] *= g[t];
      const double* inf = &per_unit[(size_t(i) * size_t(M) + size_t(s)) * size_t(T)];
      double si = 0, st = 0;
      for (std::int64_t t = 0; t < T; ++t) {
        si += inf[t] * inf[t];
        st += tru[size_t(t)] * tru[size_t(t)];
      }
      ss[size_t(q) * size_t(M) + size_t(s)] += si;
      ss[MM + size_t(q) * size_t(M) + size_t(s)] += st;
      if (receives || q == s) {
        ss[2 * MM + size_t(q) * size_t(M) + size_t(s)] += si;
        ss[3 * MM + size_t(q) * size_t(M) + size_t(s)] += st;
        double* pz = &pool[6 * (size_t(q) * size_t(M) + size_t(s))];
        for (std::int64_t t = 0; t < T; ++t) {
          const double x = inf[t], y = tru[size_t(t)];
          pz[0] += 1;
          pz[1] += x;
          pz[2] += y;
          pz[3] += x * x;
          pz[4] += y * y;
          pz[5] += x * y;
        }
        const double r = corr(inf, tru.data(), T);
        if (std::isfinite(r)) {
          ucorr[size_t(u) * size_t(M) + size_t(s)] = r;
          uvalid[size_t(u) * size_t(M) + size_t(s)] = 1;
        }
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, ucorr.data(), int(NM), MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, uvalid.data(), int(NM), MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, ss.data(), int(4 * MM), MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, pool.data(), int(6 * MM), MPI_DOUBLE, MPI_SUM, comm);

  std::vector<std::int64_t> nq(size_t(M), 0);
  for (auto r : reg) ++nq[size_t(r)];
  out.r_mean.assign(MM, kNaN);
  out.r_unit.assign(MM, kNaN);
  out.r_pool.assign(MM, kNaN);
  out.ratio.assign(MM, kNaN);
  out.ratio_conn.assign(MM, kNaN);
  out.score.assign(MM, kNaN);
  out.true_rms.assign(MM, kNaN);
  for (int q = 0; q < M; ++q)
    for (int s = 0; s < M; ++s) {
      const size_t z = size_t(q) * size_t(M) + size_t(s);
      if (nq[size_t(q)] == 0 || nq[size_t(s)] == 0) continue;
      const double n = double(nq[size_t(q)]) * double(T);
      out.score[z] = std::sqrt(ss[z] / n);
      out.true_rms[z] = std::sqrt(ss[MM + z] / n);
      if (out.true_rms[z] > 0) out.ratio[z] = out.score[z] / out.true_rms[z];
      if (ss[3 * MM + z] > 0) out.ratio_conn[z] = std::sqrt(ss[2 * MM + z] / ss[3 * MM + z]);
      out.r_mean[z] = corr(&c.mean[z * size_t(T)], &a.cur_mean[z * size_t(T)], T);
      std::vector<double> v;
      for (std::int64_t u = 0; u < N; ++u)
        if (reg[size_t(u)] == q && uvalid[size_t(u) * size_t(M) + size_t(s)] > 0)
          v.push_back(ucorr[size_t(u) * size_t(M) + size_t(s)]);
      out.r_unit[z] = median(v);
      const double* pz = &pool[6 * z];
      if (pz[0] > 1) {
        const double np = pz[0], va = pz[3] - pz[1] * pz[1] / np, vb = pz[4] - pz[2] * pz[2] / np;
        if (va > 0 && vb > 0) out.r_pool[z] = (pz[5] - pz[1] * pz[2] / np) / std::sqrt(va * vb);
      }
    }
  std::vector<double> sc;
  std::vector<int> lab;
  for (int q = 0; q < M; ++q)
    for (int s = 0; s < M; ++s) {
      if (q == s) continue;
      const size_t z = size_t(q) * size_t(M) + size_t(s);
      sc.push_back(out.score[z]);
      lab.push_back(a.pair_coupled[z] ? 1 : 0);
    }
  out.auc = auc(sc, lab);
  if (gains) {
    // How well the fitted gains follow the true ones, where the fit kept them.
    out.gains_r.assign(MM, kNaN);
    out.kept.assign(size_t(M), 0);
    for (int q = 0; q < M; ++q) {
      out.kept[size_t(q)] = kept && (*kept)[size_t(q)] ? 1 : 0;
      if (!out.kept[size_t(q)]) continue;
      for (int s = 0; s < M; ++s) {
        if (q == s) continue;
        const size_t z = size_t(q) * size_t(M) + size_t(s);
        out.gains_r[z] = corr(&(*gains)[z * size_t(T)], &a.gains[z * size_t(T)], T);
      }
    }
  }
  return out;
}

Run run_one(const Case& c, const Method& m, std::uint64_t seed, MPI_Comm comm) {
  const auto t0 = std::chrono::steady_clock::now();
  sim::SimulateParams sp = c.sim;
  sp.seed = seed;
  // Every rank simulates the same animal (serial, deterministic): no rank-count dependence.
  const sim::CohortPlan plan = sim::make_plan(sp);
  const sim::SimulatedAnimal a = sim::simulate_animal(sp, plan, 0);
  AnimalData data;
  data.meta = a.meta;
  data.rows = own_rows(PetscInt(a.meta.n_units), comm);
  const std::int64_t T = a.meta.n_samples;
  data.activity.assign(a.rates.begin() + data.rows.begin * T, a.rates.begin() + data.rows.end * T);
  data.inputs = a.inputs;  // the known external inputs (cohort preset: the state drives)
  // One fit, or an ensemble over fit seeds whose J and model rates are averaged (the currents
  // J r are then the members' mean up to the small differences between their rates).
  const int K = std::max(1, m.ensemble);
  std::vector<double> J, rates;
  RowRange rows{};
  double pvar = 0;
  // Gated fits (not in ensembles: the command refuses them): the fitted gains and which target
  // regions kept them.
  std::vector<double> gains;
  std::vector<int> kept;
  for (int k = 0; k < K; ++k) {
    fit::Params p = m.fit;
    p.seed = seed + std::uint64_t(k) * kEnsembleStride;
    fit::Trainer tr(data, 0, p, comm);
    while (!tr.finished()) tr.run_next();
    const std::vector<double> Jk = tr.local_J(), Rk = tr.full_rates();
    if (k == 0) {
      J.assign(Jk.size(), 0.0);
      rates.assign(Rk.size(), 0.0);
      rows = tr.rows();
      if (m.fit.gains_used()) {
        gains = tr.gains_at_samples();
        kept = tr.gains().kept;
      }
    }
    for (size_t i = 0; i < Jk.size(); ++i) J[i] += Jk[i] / K;
    for (size_t i = 0; i < Rk.size(); ++i) rates[i] += Rk[i] / K;
    pvar += tr.pvar().back() / K;
  }
  Run r = evaluate(a, J, rows, rates, comm, gains.empty() ? nullptr : &gains, gains.empty() ? nullptr : &kept);
  r.case_name = c.name;
  r.method_name = m.name;
  r.seed = seed;
  r.pvar = pvar;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MPI_Bcast(&secs, 1, MPI_DOUBLE, 0, comm);
  r.seconds = secs;
  return r;
}

Summary summarise(const std::vector<Run>& runs) {
  Summary s;
  if (runs.empty()) return s;
  s.case_name = runs[0].case_name;
  s.method_name = runs[0].method_name;
  s.n_runs = int(runs.size());
  std::vector<double> ru, rm, ra, rc, rw, pv, sc, rp, rpw, gr;
  std::vector<int> lab;
  double n_targets = 0, n_kept = 0;
  for (const Run& r : runs) {
    for (int q = 0; q < r.M; ++q)
      for (int t = 0; t < r.M; ++t) {
        const size_t z = size_t(q) * size_t(r.M) + size_t(t);
        if (q == t) {
          rw.push_back(r.r_unit[z]);
          rpw.push_back(r.r_pool[z]);
          continue;
        }
        sc.push_back(r.score[z]);
        lab.push_back(r.coupled[z] ? 1 : 0);
        if (!r.coupled[z]) continue;
        ru.push_back(r.r_unit[z]);
        rp.push_back(r.r_pool[z]);
        rm.push_back(r.r_mean[z]);
        ra.push_back(r.ratio[z]);
        rc.push_back(r.ratio_conn[z]);
      }
    pv.push_back(r.pvar);
    s.seconds += r.seconds;
    for (size_t q = 0; q < r.kept.size(); ++q) {
      ++n_targets;
      n_kept += double(r.kept[q]);
      for (int t = 0; t < r.M; ++t) {
        const size_t z = q * size_t(r.M) + size_t(t);
        if (int(q) != t && r.coupled[z]) gr.push_back(r.gains_r[z]);
      }
    }
  }
  if (n_targets > 0) {
    s.kept_fraction = n_kept / n_targets;
    s.gains_r_inter = median(gr);
  }
  s.r_unit_inter = median(ru);
  s.r_mean_inter = median(rm);
  s.ratio_inter = median(ra);
  s.ratio_conn_inter = median(rc);
  s.r_unit_within = median(rw);
  s.r_pool_inter = median(rp);
  s.r_pool_within = median(rpw);
  s.pvar = median(pv);
  s.auc = auc(sc, lab);
  return s;
}

namespace {
std::string fmt(double v, int prec = 3) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}
}  // namespace

std::string format_table(const std::vector<std::vector<Run>>& groups, const std::string& header) {
  std::ostringstream os;
  // The method column fits the longest name (e.g. region+inputs@regression*3).
  int mw = 15;
  for (const auto& g : groups)
    for (const Run& r : g) mw = std::max(mw, int(r.method_name.size()) + 2);
  os << header;
  os << "\nPer region pair (target <- source), medians over seeds:\n";
  os << std::left << std::setw(26) << "case" << std::setw(mw) << "method" << std::setw(12) << "pair" << std::right
     << std::setw(8) << "coupled" << std::setw(9) << "r_mean" << std::setw(9) << "r_unit" << std::setw(9) << "r_pool"
     << std::setw(10) << "ratio" << std::setw(11) << "ratio_conn"
     << std::setw(11) << "true_rms" << "\n";
  for (const auto& g : groups) {
    if (g.empty()) continue;
    const Run& f = g[0];
    for (int q = 0; q < f.M; ++q)
      for (int s = 0; s < f.M; ++s) {
        const size_t z = size_t(q) * size_t(f.M) + size_t(s);
        std::vector<double> rm, ru, ra, rc, tr, rp;
        double cp = 0;
        for (const Run& r : g) {
          if (r.M != f.M || r.regions != f.regions) continue;  // (same regions for every seed of a preset)
          rm.push_back(r.r_mean[z]);
          ru.push_back(r.r_unit[z]);
          rp.push_back(r.r_pool[z]);
          ra.push_back(r.ratio[z]);
          rc.push_back(r.ratio_conn[z]);
          tr.push_back(r.true_rms[z]);
          cp += double(r.coupled[z]);
        }
        os << std::left << std::setw(26) << f.case_name << std::setw(mw) << f.method_name << std::setw(12)
           << (f.regions[size_t(q)] + "<-" + f.regions[size_t(s)]) << std::right << std::setw(8)
           << (cp == double(rm.size()) ? "yes" : cp == 0 ? "no" : "mixed") << std::setw(9) << fmt(median(rm))
           << std::setw(9) << fmt(median(ru)) << std::setw(9) << fmt(median(rp)) << std::setw(10) << fmt(median(ra), 2)
           << std::setw(11) << fmt(median(rc), 2) << std::setw(11) << fmt(median(tr), 4) << "\n";
      }
  }
  os << "\nSummary (inter = truly coupled inter-region pairs; within = region onto itself; medians over"
        " seeds and pairs; AUC pooled over seeds, present vs absent inter-region pairs; gated fits: kept ="
        " share of target regions whose gains were kept, gains_r = corr over time of fitted and true gains,"
        " coupled pairs of kept targets):\n";
  os << std::left << std::setw(26) << "case" << std::setw(mw) << "method" << std::right << std::setw(6) << "seeds"
     << std::setw(14) << "r_unit_inter" << std::setw(14) << "r_pool_inter" << std::setw(14) << "r_mean_inter" << std::setw(13) << "ratio_inter"
     << std::setw(12) << "ratio_conn" << std::setw(10) << "r_within" << std::setw(15) << "r_pool_within" << std::setw(9) << "pVar" << std::setw(8) << "AUC" << std::setw(7) << "kept"
     << std::setw(9) << "gains_r" << std::setw(10) << "time_s" << "\n";
  for (const auto& g : groups) {
    const Summary s = summarise(g);
    if (s.n_runs == 0) continue;
    os << std::left << std::setw(26) << s.case_name << std::setw(mw) << s.method_name << std::right << std::setw(6)
       << s.n_runs << std::setw(14) << fmt(s.r_unit_inter) << std::setw(14) << fmt(s.r_pool_inter) << std::setw(14)
       << fmt(s.r_mean_inter) << std::setw(13) << fmt(s.ratio_inter, 2)
       << std::setw(12) << fmt(s.ratio_conn_inter, 2) << std::setw(10) << fmt(s.r_unit_within)
       << std::setw(15) << fmt(s.r_pool_within) << std::setw(9) << fmt(s.pvar, 4)
       << std::setw(8) << fmt(s.auc) << std::setw(7) << fmt(s.kept_fraction, 2) << std::setw(9)
       << fmt(s.gains_r_inter) << std::setw(10) << fmt(s.seconds, 1) << "\n";
  }
  return os.str();
}

void write_h5(const std::string& path, const std::vector<std::vector<Run>>& groups, const std::string& config,
              MPI_Comm comm) {
  h5::AtomicFile af(path, comm);
  h5::File& f = af.file();
  int gi = 0;
  for (const auto& g : groups) {
    if (g.empty()) continue;
    const std::string base = cat("/g", gi++);
    h5::ensure_group(f, base);
    const Run& r0 = g[0];
    const hsize_t S = hsize_t(g.size()), M = hsize_t(r0.M);
    auto stack = [&](const char* name, std::vector<double> Run::*field) {
      std::vector<double> v;
      for (const Run& r : g) {
        std::vector<double> x = r.*field;
        x.resize(size_t(M * M), kNaN);
        v.insert(v.end(), x.begin(), x.end());
      }
      h5::write_doubles(f, base + "/" + name, {S, M, M}, v.data());
    };
    stack("r_mean", &Run::r_mean);
    stack("r_unit", &Run::r_unit);
    stack("r_pool", &Run::r_pool);
    stack("ratio", &Run::ratio);
    stack("ratio_conn", &Run::ratio_conn);
    stack("score", &Run::score);
    stack("true_rms", &Run::true_rms);
    std::vector<std::int64_t> cp, seeds;
    std::vector<double> pv, au;
    for (const Run& r : g) {
      std::vector<std::int64_t> x = r.coupled;
      x.resize(size_t(M * M), 0);
      cp.insert(cp.end(), x.begin(), x.end());
      seeds.push_back(std::int64_t(r.seed));
      pv.push_back(r.pvar);
      au.push_back(r.auc);
    }
    h5::write_ints(f, base + "/pair_coupled", {S, M, M}, cp.data());
    h5::write_ints(f, base + "/seeds", {S}, seeds.data());
    h5::write_doubles(f, base + "/pvar", {S}, pv.data());
    h5::write_doubles(f, base + "/auc", {S}, au.data());
    h5::write_strings(f, base + "/region_names", r0.regions);
    if (!r0.kept.empty()) {
      stack("gains_r", &Run::gains_r);
      std::vector<std::int64_t> kp;
      for (const Run& r : g) kp.insert(kp.end(), r.kept.begin(), r.kept.end());
      h5::write_ints(f, base + "/gains_kept", {S, M}, kp.data());
    }
    const Summary s = summarise(g);
    h5::set_attr(f, base, "case", s.case_name);
    h5::set_attr(f, base, "method", s.method_name);
    h5::set_attr(f, base, "median_r_unit_inter", s.r_unit_inter);
    h5::set_attr(f, base, "median_r_mean_inter", s.r_mean_inter);
    h5::set_attr(f, base, "median_ratio_inter", s.ratio_inter);
    h5::set_attr(f, base, "median_ratio_conn_inter", s.ratio_conn_inter);
    h5::set_attr(f, base, "median_r_within", s.r_unit_within);
    h5::set_attr(f, base, "median_r_pool_inter", s.r_pool_inter);
    h5::set_attr(f, base, "median_r_pool_within", s.r_pool_within);
    h5::set_attr(f, base, "median_pvar", s.pvar);
    h5::set_attr(f, base, "auc_pooled", s.auc);
    if (!r0.kept.empty()) {
      h5::set_attr(f, base, "gains_kept_fraction", s.kept_fraction);
      h5::set_attr(f, base, "median_gains_r_inter", s.gains_r_inter);
    }
  }
  h5::set_attr(f, "/", "format", "cohortnet-validate");
  h5::set_attr(f, "/", "config", config);
  af.commit();
}

}  // namespace cohortnet::validate
