#include "fit/kernels.hpp"

#include <array>
#include <utility>

namespace cohortnet::fit::kernels {
namespace {

// One segment of rows [i0, i1): apply NU pending updates (group g) and, if Y, y = A x with the
// updated values. Four columns per pass keep y[i] in a register for four FMAs; the inner loop over
// rows is contiguous and vectorises. Per element the order is fixed: updates s = 0..NU-1, then the
// product summed over j ascending.
template <int NU, bool Y>
void segment_pass(PetscInt i0, PetscInt i1, PetscInt m, PetscInt n, double* a, PetscInt lda, const double* U,
                  const double* S, int G, int g, const double* x, double* y) {
  const PetscInt len = i1 - i0;
  double* __restrict yy = Y ? y + i0 : nullptr;
  if constexpr (Y)
    for (PetscInt i = 0; i < len; ++i) yy[i] = 0.0;
  std::array<const double*, NU + 1> u{};  // (+1: no zero-length array when NU = 0)
  std::array<const double*, NU + 1> srow{};
  for (int s = 0; s < NU; ++s) {
    u[size_t(s)] = U + PetscInt(s) * m + i0;
    srow[size_t(s)] = S + (PetscInt(s) * G + g) * n;
  }
  PetscInt j = 0;
  for (; j + 4 <= n; j += 4) {
    double* __restrict c0 = a + i0 + j * lda;
    double* __restrict c1 = c0 + lda;
    double* __restrict c2 = c1 + lda;
    double* __restrict c3 = c2 + lda;
    std::array<double, NU + 1> s0{}, s1{}, s2{}, s3{};
    for (int s = 0; s < NU; ++s) {
      const double* sr = srow[size_t(s)] + j;
      s0[size_t(s)] = sr[0];
      s1[size_t(s)] = sr[1];
      s2[size_t(s)] = sr[2];
      s3[size_t(s)] = sr[3];
    }
    [[maybe_unused]] const double x0 = Y ? x[j] : 0.0, x1 = Y ? x[j + 1] : 0.0, x2 = Y ? x[j + 2] : 0.0,
                                  x3 = Y ? x[j + 3] : 0.0;
#pragma GCC ivdep
    for (PetscInt i = 0; i < len; ++i) {
      double v0 = c0[i], v1 = c1[i], v2 = c2[i], v3 = c3[i];
      for (int s = 0; s < NU; ++s) {
        const double us = u[size_t(s)][i];
        v0 -= us * s0[size_t(s)];
        v1 -= us * s1[size_t(s)];
        v2 -= us * s2[size_t(s)];
        v3 -= us * s3[size_t(s)];
      }
      if constexpr (NU > 0) {
        c0[i] = v0;
        c1[i] = v1;
        c2[i] = v2;
        c3[i] = v3;
      }
      if constexpr (Y) {
        double t = yy[i];
        t += v0 * x0;
        t += v1 * x1;
        t += v2 * x2;
        t += v3 * x3;
        yy[i] = t;
      }
    }
  }
  for (; j < n; ++j) {
    double* __restrict c0 = a + i0 + j * lda;
    std::array<double, NU + 1> s0{};
    for (int s = 0; s < NU; ++s) s0[size_t(s)] = srow[size_t(s)][j];
    [[maybe_unused]] const double x0 = Y ? x[j] : 0.0;
#pragma GCC ivdep
    for (PetscInt i = 0; i < len; ++i) {
      double v0 = c0[i];
      for (int s = 0; s < NU; ++s) v0 -= u[size_t(s)][i] * s0[size_t(s)];
      if constexpr (NU > 0) c0[i] = v0;
      if constexpr (Y) yy[i] += v0 * x0;
    }
  }
}

template <int NU>
void apply_n(PetscInt m, PetscInt n, double* a, PetscInt lda, const double* U, const double* S, int G,
             const std::vector<Segment>& segs, const double* x, double* y) {
  for (const Segment& sg : segs) {
    if (x) segment_pass<NU, true>(sg.begin, sg.end, m, n, a, lda, U, S, G, sg.group, x, y);
    else segment_pass<NU, false>(sg.begin, sg.end, m, n, a, lda, U, S, G, sg.group, x, y);
  }
}

template <int... NU>
void dispatch(std::integer_sequence<int, NU...>, int nu, PetscInt m, PetscInt n, double* a, PetscInt lda,
              const double* U, const double* S, int G, const std::vector<Segment>& segs, const double* x,
              double* y) {
  ((nu == NU ? apply_n<NU>(m, n, a, lda, U, S, G, segs, x, y) : void()), ...);
}

}  // namespace

std::vector<Segment> segments(const std::vector<int>& row_group) {
  std::vector<Segment> out;
  for (size_t i = 0; i < row_group.size(); ++i) {
    if (out.empty() || out.back().group != row_group[i]) out.push_back({PetscInt(i), PetscInt(i), row_group[i]});
    out.back().end = PetscInt(i) + 1;
  }
  return out;
}

// y += the product of W consecutive columns (from c, stride lda) with x[0..W), each y[i] adding its
// terms one at a time in column order (the order segment_pass uses).
template <int W>
void add_columns(PetscInt m, const double* c, PetscInt lda, const double* x, double* __restrict yy) {
  std::array<const double*, W> col{};
  for (int k = 0; k < W; ++k) col[size_t(k)] = c + k * lda;
#pragma GCC ivdep
  for (PetscInt i = 0; i < m; ++i) {
    double t = yy[i];
    for (int k = 0; k < W; ++k) t += col[size_t(k)][i] * x[k];
    yy[i] = t;
  }
}

void gemv(PetscInt m, PetscInt n, const double* a, PetscInt lda, const double* x, double* y) {
  // Eight columns per pass (the plain product, J r at most RNN steps): y[i] is loaded and stored
  // once per eight columns instead of four, 3-15% faster on blocks that sit in the L3
  // (bench/README.md, 2026-12-07). The order of every y[i]'s terms is segment_pass's, so the
  // result equals apply_updates' product to the bit (tests/fit/test_kernels.cpp).
  for (PetscInt i = 0; i < m; ++i) y[i] = 0.0;
  PetscInt j = 0;
  for (; j + 8 <= n; j += 8) add_columns<8>(m, a + j * lda, lda, x + j, y);
  for (; j + 4 <= n; j += 4) add_columns<4>(m, a + j * lda, lda, x + j, y);
  for (; j < n; ++j) add_columns<1>(m, a + j * lda, lda, x + j, y);
}

void apply_updates(PetscInt m, PetscInt n, double* a, PetscInt lda, int nu, const double* U, const double* S,
                   int G, const std::vector<Segment>& segs, const double* x, double* y) {
  if (nu < 0 || nu > kMaxPending) return;
  dispatch(std::make_integer_sequence<int, kMaxPending + 1>{}, nu, m, n, a, lda, U, S, G, segs, x, y);
}

void subtract_pending(PetscInt m, int nu, const double* U, const double* d, int G,
                      const std::vector<Segment>& segs, double* y) {
  for (const Segment& sg : segs)
    for (int s = 0; s < nu; ++s) {
      const double ds = d[s * G + sg.group];
      const double* us = U + PetscInt(s) * m;
#pragma GCC ivdep
      for (PetscInt i = sg.begin; i < sg.end; ++i) y[i] -= us[i] * ds;
    }
}

double dot(PetscInt n, const double* a, const double* b) {
  double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  PetscInt j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) p[l] += a[j + l] * b[j + l];
  double t = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
  for (; j < n; ++j) t += a[j] * b[j];
  return t;
}

}  // namespace cohortnet::fit::kernels
