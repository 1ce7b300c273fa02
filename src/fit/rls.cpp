#include "fit/rls.hpp"

#include <algorithm>
#include <cmath>

#include "fit/dense.hpp"

namespace cohortnet::fit {

// Block storage: the local rows of one target region q.
struct Rls::Slot {
  int q = 0;
  std::vector<PetscInt> rows;  // local row indices (ascending)
  PetscInt pos0 = 0;           // position of the first one among q's units
  PetscInt m = 0, W = 0;       // rows; columns = n_q + n_in
  std::vector<double> P;       // m x W column-major (lda m): [P_rr P_ru] of these rows
  std::vector<double> U, S;    // pending: local columns (B x m), row vectors c [k_q; k_u] (B x W)
  std::vector<double> z, kl;   // z_q = [r_q; u], and P z for these rows
};

Rls::Rls(Prior kind, const UnitLayout& layout, int n_in, int update_block)
    : kind_(kind), L_(layout), n_in_(n_in), B_(update_block), m_(layout.m()) {
  const PetscInt N = L_.N, m = m_, b = L_.rows.begin;
  const int M = L_.n_regions;
  row_group_.assign(size_t(m), 0);
  if (kind_ != Prior::Shared)
    for (PetscInt i = 0; i < m; ++i) row_group_[size_t(i)] = L_.unit_region[size_t(b + i)];
  kl_.assign(size_t(m), 0.0);
  k_.assign(size_t(N), 0.0);
  ku_.assign(size_t(n_in_), 0.0);
  if (kind_ != Prior::Block) {
    const int nb = kind_ == Prior::Shared ? 1 : M;
    try {
      for (int q = 0; q < nb; ++q) P_.push_back(create_dense(L_.comm, m, N));
    } catch (...) {
      for (Mat& p : P_) MatDestroy(&p);
      throw;
    }
    U_.assign(size_t(nb), std::vector<double>(size_t(B_) * size_t(m), 0.0));
    slots_ = nb;
    j_segs_ = kernels::segments(row_group_);
    kuq_.assign(size_t(nb) * size_t(n_in_), 0.0);
  } else {
    src_.assign(size_t(M), {});
    for (PetscInt j = 0; j < N; ++j) src_[size_t(L_.unit_region[size_t(j)])].push_back(j);
    pub_.resize(size_t(M));
    slot_of_.assign(size_t(M), -1);
    std::vector<int> row_slot(size_t(m), 0);
    for (PetscInt i = 0; i < m; ++i) {
      const int q = row_group_[size_t(i)];
      if (slot_of_[size_t(q)] < 0) {
        slot_of_[size_t(q)] = int(slot_.size());
        Slot* s = new Slot;
        s->q = q;
        s->pos0 = PetscInt(std::lower_bound(src_[size_t(q)].begin(), src_[size_t(q)].end(), b + i) - src_[size_t(q)].begin());
        slot_.push_back(s);
      }
      Slot& s = *slot_[size_t(slot_of_[size_t(q)])];
      s.rows.push_back(i);
      row_slot[size_t(i)] = slot_of_[size_t(q)];
    }
    for (Slot* s : slot_) {
      s->m = PetscInt(s->rows.size());
      s->W = PetscInt(src_[size_t(s->q)].size()) + n_in_;
      s->P.assign(size_t(s->m) * size_t(s->W), 0.0);
      s->U.assign(size_t(B_) * size_t(s->m), 0.0);
      s->S.assign(size_t(B_) * size_t(s->W), 0.0);
      s->z.assign(size_t(s->W), 0.0);
      s->kl.assign(size_t(s->m), 0.0);
    }
    slots_ = std::max(1, int(slot_.size()));
    j_segs_ = kernels::segments(row_slot);
    kuq_.assign(size_t(slots_) * size_t(n_in_), 0.0);
  }
  // J's row vectors: zero outside a block's sources (Block writes only those), B terms per slot.
  Sj_.assign(size_t(B_) * size_t(slots_) * size_t(N), 0.0);
  dots_.assign(size_t(B_) * size_t(slots_), 0.0);
}

Rls::~Rls() {
  for (Mat& p : P_)
    if (p) MatDestroy(&p);
  for (Slot* s : slot_) delete s;
}

int Rls::n_p() const { return kind_ == Prior::Shared ? 0 : L_.n_regions; }

void Rls::set_prior(double p0, double ratio) {
  const PetscInt N = L_.N, m = m_, b = L_.rows.begin;
  count_ = 0;
  if (kind_ != Prior::Block) {
    for (size_t q = 0; q < P_.size(); ++q) {
      DenseArray d(P_[q]);
      for (PetscInt j = 0; j < N; ++j)
        for (PetscInt i = 0; i < m; ++i) {
          const bool own = kind_ == Prior::Shared || L_.unit_region[size_t(j)] == int(q);
          d.a[i + j * d.lda] = (b + i == j) ? (own ? p0 : p0 * ratio) : 0.0;
        }
    }
    const size_t W = size_t(N) + size_t(n_in_);
    pru_.assign(P_.size(), std::vector<double>(size_t(m) * size_t(n_in_), 0.0));
    pu_.assign(P_.size(), std::vector<double>(size_t(n_in_) * W, 0.0));
    for (auto& pu : pu_)
      for (int c = 0; c < n_in_; ++c) pu[size_t(c) * W + size_t(N) + size_t(c)] = p0;
    return;
  }
  // Block: other regions' sources are not in P_Q (ratio 0 by construction).
  for (Slot* s : slot_) {
    std::fill(s->P.begin(), s->P.end(), 0.0);
    for (PetscInt l = 0; l < s->m; ++l) s->P[size_t(l + (s->pos0 + l) * s->m)] = p0;
  }
  for (int q = 0; q < L_.n_regions; ++q) {
    const size_t W = src_[size_t(q)].size() + size_t(n_in_);
    pub_[size_t(q)].assign(size_t(n_in_) * W, 0.0);
    for (int c = 0; c < n_in_; ++c) pub_[size_t(q)][size_t(c) * W + src_[size_t(q)].size() + size_t(c)] = p0;
  }
}

double Rls::gain(double rk, const std::string& animal, int run, std::int64_t sample, int q) const {
  if (!std::isfinite(rk) || !(1.0 + rk > 0))
    throw Diverged(cat("animal ", animal, ": the fit diverged ",
                       run >= 0 ? cat("in run ", run + 1) : std::string("in the regression start"), " (sample ", sample,
                       kind_ != Prior::Shared ? cat(", P of region ", L_.region_names[size_t(q)]) : std::string(), "): 1 + z.Pz = ", 1.0 + rk,
                       (std::isfinite(rk) ? " <= 0, P lost positive definiteness" : " is not finite"),
                       "; try a smaller --g or --p0, a larger --tau-rnn or a larger --dt-factor (dt/tau-rnn must stay well below 1)"));
  return 1.0 / (1.0 + rk);
}

void Rls::step(const double* r, const double* u, const std::string& animal, int run, std::int64_t sample) {
  if (kind_ == Prior::Block) step_block(r, u, animal, run, sample);
  else step_full(r, u, animal, run, sample);
}

void Rls::step_full(const double* r, const double* u, const std::string& animal, int run, std::int64_t sample) {
  const PetscInt N = L_.N, m = m_;
  const int n_in = n_in_, nb = int(P_.size());
  const size_t Ns = size_t(N), W = Ns + size_t(n_in);
  const bool full = count_ == B_;
  const int idx = full ? 0 : count_;
  for (int q = 0; q < nb; ++q) {
    DenseArray Pq(P_[size_t(q)]);
    const std::vector<kernels::Segment> seg = {kernels::Segment{0, m, q}};
    if (full) {
      // The full block of P's terms, fused with P r.
      kernels::apply_updates(m, N, Pq.a, Pq.lda, B_, U_[size_t(q)].data(), Sj_.data(), slots_, seg, r, kl_.data());
    } else {
      kernels::gemv(m, N, Pq.a, Pq.lda, r, kl_.data());
      for (int s = 0; s < count_; ++s) dots_[size_t(s * slots_ + q)] = kernels::dot(N, Sj_.data() + (size_t(s) * size_t(slots_) + size_t(q)) * Ns, r);
      kernels::subtract_pending(m, count_, U_[size_t(q)].data(), dots_.data(), slots_, seg, kl_.data());
    }
    double* pru = n_in > 0 ? pru_[size_t(q)].data() : nullptr;
    for (PetscInt i = 0; i < m && n_in > 0; ++i)
      for (int c = 0; c < n_in; ++c) kl_[size_t(i)] += pru[size_t(i) * size_t(n_in) + size_t(c)] * u[c];
    MPI_Allgatherv(kl_.data(), int(m), MPI_DOUBLE, k_.data(), L_.counts.data(), L_.offsets.data(), MPI_DOUBLE, L_.comm);
    double rk = 0;
    for (PetscInt j = 0; j < N; ++j) rk += r[j] * k_[size_t(j)];
    for (int c = 0; c < n_in; ++c) {
      const double* row = &pu_[size_t(q)][size_t(c) * W];
      double v = 0;
      for (PetscInt j = 0; j < N; ++j) v += row[j] * r[j];
      for (int d = 0; d < n_in; ++d) v += row[Ns + size_t(d)] * u[d];
      ku_[size_t(c)] = v;
      rk += u[c] * v;
    }
    const double c = gain(rk, animal, run, sample, q);
    if (n_in > 0) {
      // The input parts of P are small and updated at once.
      for (PetscInt i = 0; i < m; ++i)
        for (int d = 0; d < n_in; ++d) pru[size_t(i) * size_t(n_in) + size_t(d)] -= kl_[size_t(i)] * (c * ku_[size_t(d)]);
      for (int cc = 0; cc < n_in; ++cc) {
        double* row = &pu_[size_t(q)][size_t(cc) * W];
        for (PetscInt j = 0; j < N; ++j) row[j] -= ku_[size_t(cc)] * (c * k_[size_t(j)]);
        for (int d = 0; d < n_in; ++d) row[Ns + size_t(d)] -= ku_[size_t(cc)] * (c * ku_[size_t(d)]);
      }
    }
    // P_q's term k (c k)^T and J's for the rows of q share the row vector c k.
    std::copy_n(kl_.data(), size_t(m), U_[size_t(q)].data() + size_t(idx) * size_t(m));
    double* sj = Sj_.data() + (size_t(idx) * size_t(slots_) + size_t(q)) * Ns;
    for (PetscInt j = 0; j < N; ++j) sj[j] = c * k_[size_t(j)];
    for (int d = 0; d < n_in; ++d) kuq_[size_t(q) * size_t(n_in) + size_t(d)] = c * ku_[size_t(d)];
  }
  count_ = idx + 1;
}

void Rls::step_block(const double* r, const double* u, const std::string& animal, int run, std::int64_t sample) {
  const int n_in = n_in_;
  const bool full = count_ == B_;
  const int idx = full ? 0 : count_;
  // This rank's entries of k = P_Q z_Q, each row with its own region's block.
  for (Slot* sp : slot_) {
    Slot& s = *sp;
    const std::vector<PetscInt>& src = src_[size_t(s.q)];
    for (size_t j = 0; j < src.size(); ++j) s.z[j] = r[src[j]];
    for (int c = 0; c < n_in; ++c) s.z[src.size() + size_t(c)] = u[c];
    const std::vector<kernels::Segment> seg = {kernels::Segment{0, s.m, 0}};
    if (full) {
      kernels::apply_updates(s.m, s.W, s.P.data(), s.m, B_, s.U.data(), s.S.data(), 1, seg, s.z.data(), s.kl.data());
    } else {
      kernels::gemv(s.m, s.W, s.P.data(), s.m, s.z.data(), s.kl.data());
      for (int t = 0; t < count_; ++t) dots_[size_t(t)] = kernels::dot(s.W, s.S.data() + size_t(t) * size_t(s.W), s.z.data());
      kernels::subtract_pending(s.m, count_, s.U.data(), dots_.data(), 1, seg, s.kl.data());
    }
    for (PetscInt l = 0; l < s.m; ++l) kl_[size_t(s.rows[size_t(l)])] = s.kl[size_t(l)];
  }
  // One all-gather gives every region's k_Q (each unit's entry is its own region's).
  MPI_Allgatherv(kl_.data(), int(m_), MPI_DOUBLE, k_.data(), L_.counts.data(), L_.offsets.data(), MPI_DOUBLE, L_.comm);
  std::vector<double> kq;
  for (int q = 0; q < L_.n_regions; ++q) {
    const std::vector<PetscInt>& src = src_[size_t(q)];
    const size_t nq = src.size(), W = nq + size_t(n_in);
    kq.resize(W);
    double rk = 0;
    for (size_t j = 0; j < nq; ++j) {
      kq[j] = k_[size_t(src[j])];
      rk += r[src[j]] * kq[j];
    }
    std::vector<double>& pu = pub_[size_t(q)];
    for (int c = 0; c < n_in; ++c) {
      const double* row = &pu[size_t(c) * W];
      double v = 0;
      for (size_t j = 0; j < nq; ++j) v += row[j] * r[src[j]];
      for (int d = 0; d < n_in; ++d) v += row[nq + size_t(d)] * u[d];
      kq[nq + size_t(c)] = v;
      rk += u[c] * v;
    }
    const double c = gain(rk, animal, run, sample, q);
    for (int cc = 0; cc < n_in; ++cc) {
      double* row = &pu[size_t(cc) * W];
      const double kc = kq[nq + size_t(cc)];
      for (size_t j = 0; j < W; ++j) row[j] -= kc * (c * kq[j]);
    }
    const int sl = slot_of_[size_t(q)];
    if (sl < 0) continue;
    Slot& s = *slot_[size_t(sl)];
    double* S = s.S.data() + size_t(idx) * W;
    for (size_t j = 0; j < W; ++j) S[j] = c * kq[j];
    std::copy_n(s.kl.data(), size_t(s.m), s.U.data() + size_t(idx) * size_t(s.m));
    double* sj = Sj_.data() + (size_t(idx) * size_t(slots_) + size_t(sl)) * size_t(L_.N);
    for (size_t j = 0; j < nq; ++j) sj[src[j]] = S[j];
    for (int d = 0; d < n_in; ++d) kuq_[size_t(sl) * size_t(n_in) + size_t(d)] = S[nq + size_t(d)];
  }
  count_ = idx + 1;
}

void Rls::flush() {
  if (count_ == 0) return;
  if (kind_ != Prior::Block) {
    for (size_t q = 0; q < P_.size(); ++q) {
      DenseArray Pq(P_[q]);
      kernels::apply_updates(m_, L_.N, Pq.a, Pq.lda, count_, U_[q].data(), Sj_.data(), slots_,
                             {kernels::Segment{0, m_, int(q)}}, nullptr, nullptr);
    }
  } else {
    for (Slot* s : slot_)
      kernels::apply_updates(s->m, s->W, s->P.data(), s->m, count_, s->U.data(), s->S.data(), 1,
                             {kernels::Segment{0, s->m, 0}}, nullptr, nullptr);
  }
  count_ = 0;
}

void Rls::j_dots(int nu, const double* x, double* dots) const {
  const size_t Ns = size_t(L_.N);
  for (int s = 0; s < nu; ++s)
    for (const kernels::Segment& sg : j_segs_) {
      double& d = dots[size_t(s * slots_ + sg.group)];
      if (kind_ != Prior::Block) {
        d = kernels::dot(L_.N, Sj_.data() + (size_t(s) * size_t(slots_) + size_t(sg.group)) * Ns, x);
      } else {
        // Only the block's own sources are non-zero: a short dot.
        const Slot& sl = *slot_[size_t(sg.group)];
        const std::vector<PetscInt>& src = src_[size_t(sl.q)];
        const double* S = sl.S.data() + size_t(s) * size_t(sl.W);
        double v = 0;
        for (size_t j = 0; j < src.size(); ++j) v += S[j] * x[src[j]];
        d = v;
      }
    }
}

const double* Rls::input_gain(PetscInt local_row) const {
  const int g = kind_ == Prior::Block ? slot_of_[size_t(row_group_[size_t(local_row)])] : row_group_[size_t(local_row)];
  return kuq_.data() + size_t(g) * size_t(n_in_);
}

std::pair<bool, bool> Rls::healthy() const {
  bool finite = true, diag = true;
  const PetscInt N = L_.N, m = m_, b = L_.rows.begin;
  if (kind_ != Prior::Block) {
    for (size_t q = 0; q < P_.size(); ++q) {
      DenseArray Pa(P_[q]);
      for (PetscInt j = 0; j < N; ++j)
        for (PetscInt i = 0; i < m; ++i)
          if (!std::isfinite(Pa.a[i + j * Pa.lda])) finite = false;
      // Other regions' sources have zero variance at prior ratio 0.
      for (PetscInt i = 0; i < m; ++i) {
        const double dv = Pa.a[i + (b + i) * Pa.lda];
        const bool own = kind_ == Prior::Shared || L_.unit_region[size_t(b + i)] == int(q);
        if (own ? !(dv > 0) : !(dv >= 0)) diag = false;
      }
    }
    for (const auto& v : pru_)
      for (double z : v)
        if (!std::isfinite(z)) finite = false;
  } else {
    for (const Slot* s : slot_) {
      for (double v : s->P)
        if (!std::isfinite(v)) finite = false;
      for (PetscInt l = 0; l < s->m; ++l)
        if (!(s->P[size_t(l + (s->pos0 + l) * s->m)] > 0)) diag = false;
    }
  }
  for (const auto& v : kind_ == Prior::Block ? pub_ : pu_)
    for (double z : v)
      if (!std::isfinite(z)) finite = false;
  return {finite, diag};
}

std::vector<double> Rls::local_P(int q) const {
  if (kind_ != Prior::Block) return to_row_major(P_[size_t(q)], m_, L_.N);
  const int sl = slot_of_[size_t(q)];
  if (sl < 0) return {};
  const Slot& s = *slot_[size_t(sl)];
  return to_row_major(s.P.data(), s.m, s.m, PetscInt(src_[size_t(q)].size()));
}

void Rls::write(const h5::File& f) const {
  const PetscInt N = L_.N;
  const hsize_t nin = hsize_t(n_in_);
  if (kind_ == Prior::Shared) {
    std::vector<double> pr = to_row_major(P_[0], m_, N);
    h5::write_rows(f, "/P", hsize_t(N), hsize_t(N), L_.rows, pr.data());
  } else if (kind_ == Prior::Region) {
    h5::ensure_group(f, "/P_region");
    for (size_t q = 0; q < P_.size(); ++q) {
      std::vector<double> pr = to_row_major(P_[q], m_, N);
      h5::write_rows(f, cat("/P_region/", q), hsize_t(N), hsize_t(N), L_.rows, pr.data());
    }
  } else {
    // Block q: its rows by position among q's units, columns [q's sources, inputs].
    h5::ensure_group(f, "/P_block");
    for (int q = 0; q < L_.n_regions; ++q) {
      const hsize_t nq = hsize_t(src_[size_t(q)].size()), W = nq + nin;
      const int sl = slot_of_[size_t(q)];
      std::vector<double> pr;
      RowRange rr{0, 0};
      if (sl >= 0) {
        const Slot& s = *slot_[size_t(sl)];
        pr = to_row_major(s.P.data(), s.m, s.m, s.W);
        rr = RowRange{s.pos0, s.pos0 + s.m};
      }
      h5::write_rows(f, cat("/P_block/", q), nq, W, rr, pr.data());
      if (n_in_ > 0) h5::write_doubles(f, cat("/P_block/u", q), {nin, W}, pub_[size_t(q)].data());
    }
    return;
  }
  if (n_in_ == 0) return;
  h5::ensure_group(f, "/P_inputs");
  for (size_t q = 0; q < pru_.size(); ++q) {
    h5::write_rows(f, cat("/P_inputs/ru", q), hsize_t(N), nin, L_.rows, pru_[q].data());
    h5::write_doubles(f, cat("/P_inputs/u", q), {nin, hsize_t(N) + nin}, pu_[q].data());
  }
}

void Rls::read(const h5::File& f) {
  const PetscInt N = L_.N;
  auto need = [&](const std::string& ds) {
    if (!h5::exists(f, ds)) fail("checkpoint ", f.path, ": dataset ", ds, " is missing");
    return ds;
  };
  count_ = 0;
  if (kind_ == Prior::Shared) {
    from_row_major(P_[0], m_, N, h5::read_rows(f, need("/P"), L_.rows));
  } else if (kind_ == Prior::Region) {
    for (size_t q = 0; q < P_.size(); ++q) from_row_major(P_[q], m_, N, h5::read_rows(f, need(cat("/P_region/", q)), L_.rows));
  } else {
    for (int q = 0; q < L_.n_regions; ++q) {
      const size_t W = src_[size_t(q)].size() + size_t(n_in_);
      const int sl = slot_of_[size_t(q)];
      RowRange rr{0, 0};
      if (sl >= 0) rr = RowRange{slot_[size_t(sl)]->pos0, slot_[size_t(sl)]->pos0 + slot_[size_t(sl)]->m};
      std::vector<double> pr = h5::read_rows(f, need(cat("/P_block/", q)), rr);
      if (pr.size() != size_t(rr.count()) * W) fail("checkpoint ", f.path, ": /P_block/", q, " has the wrong size");
      if (sl >= 0) from_row_major(slot_[size_t(sl)]->P.data(), rr.count(), rr.count(), PetscInt(W), pr);
      if (n_in_ > 0) {
        pub_[size_t(q)] = h5::read_doubles(f, need(cat("/P_block/u", q)));
        if (pub_[size_t(q)].size() != size_t(n_in_) * W) fail("checkpoint ", f.path, ": /P_block/u", q, " has the wrong size");
      }
    }
    return;
  }
  if (n_in_ == 0) return;
  for (size_t q = 0; q < pru_.size(); ++q) {
    pru_[q] = h5::read_rows(f, need(cat("/P_inputs/ru", q)), L_.rows);
    pu_[q] = h5::read_doubles(f, need(cat("/P_inputs/u", q)));
    if (pu_[q].size() != size_t(n_in_) * size_t(N + n_in_) || pru_[q].size() != size_t(m_) * size_t(n_in_))
      fail("checkpoint ", f.path, ": /P_inputs/u", q, " or /P_inputs/ru", q, " has the wrong size");
  }
}

}  // namespace cohortnet::fit
