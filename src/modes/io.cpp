#include "modes/io.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "core/text.hpp"
#include "fit/curbd.hpp"
#include "io/animal.hpp"
#include "modes/truth.hpp"

namespace fs = std::filesystem;

namespace cohortnet::modes {

namespace {



// `regions = a,b,c` from a cohort manifest; empty if the file or the key is absent.
std::vector<std::string> manifest_regions(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    if (trim(line.substr(0, eq)) == "regions") return split_list(line.substr(eq + 1));
  }
  return {};
}

std::string animal_id_of(const h5::File& f, const std::string& path) {
  if (h5::has_attr(f, "/", "animal_id")) return h5::attr_string(f, "/", "animal_id");
  return fs::path(path).stem().string();
}

std::string names_dataset(const h5::File& f) {
  if (h5::exists(f, "/currents/region_names")) return "/currents/region_names";
  return "/region_names";
}

// Rank 0's list of usable fits and their record, to every rank.
void share_record(std::vector<std::string>& files, InputRecord& r, MPI_Comm comm) {
  std::vector<std::vector<std::string>*> lists = {&files, &r.fingerprints, &r.statuses, &r.left_out_ids,
                                                  &r.left_out_reasons};
  std::ostringstream os;
  auto put = [&](const std::string& x) { os << x.size() << ':' << x; };
  for (auto* l : lists) {
    os << l->size() << ';';
    for (auto& x : *l) put(x);
  }
  put(r.cohort);
  os << (r.have_status ? 1 : 0) << ';';
  std::string packed = os.str();
  long len = long(packed.size());
  MPI_Bcast(&len, 1, MPI_LONG, 0, comm);
  packed.resize(size_t(len));
  MPI_Bcast(packed.data(), int(len), MPI_CHAR, 0, comm);
  std::istringstream is(packed);
  auto num = [&] {
    size_t n;
    char sep;
    is >> n >> sep;
    return n;
  };
  auto get = [&] {
    std::string x(num(), '\0');
    is.read(x.data(), std::streamsize(x.size()));
    return x;
  };
  for (auto* l : lists) {
    l->assign(num(), "");
    for (auto& x : *l) x = get();
  }
  r.cohort = get();
  r.have_status = num() != 0;
}

}  // namespace

std::string summary_dataset(const std::string& path, const std::string& summary, MPI_Comm comm) {
  h5::File f = h5::open_read(path, comm);
  if (h5::exists(f, "/currents/" + summary)) return "/currents/" + summary;
  if (h5::exists(f, "/current_" + summary)) return "/current_" + summary;
  if (h5::exists(f, "/" + summary)) return "/" + summary;
  if (summary == "pathways" && h5::exists(f, "/gains")) return "/pathways";
  return "";
}

AnimalMatrix load_summary(const std::string& path, const std::string& dataset, const PairLayout& L,
                          const std::vector<std::string>& regions, const std::string& scale,
                          const std::string& negative, bool allow_unknown, double* scale_out, MPI_Comm comm) {
  h5::File f = h5::open_read(path, comm);
  AnimalMatrix a;
  a.id = animal_id_of(f, path);
  const std::string nd = names_dataset(f);
  const std::vector<std::string> names = h5::read_strings(f, nd);
  const auto shape = h5::dims(f, dataset == "/pathways" ? std::string("/gains") : dataset);
  const size_t M = names.size();
  if (shape.size() != 3 || shape[0] != M || shape[1] != M)
    fail("file ", path, ": dataset ", dataset, " must be [M x M x T] with M = ", M, " (the length of ", nd, ")");
  if (shape[2] < 2) fail("file ", path, ": dataset ", dataset, " has fewer than 2 samples");
  a.T = int(shape[2]);
  // "/pathways": the effective pathway gains, /gains x /pathway_strength (modes --summary pathways).
  const bool pathways = dataset == "/pathways";
  const std::string ds = pathways ? "/gains" : dataset;
  std::vector<double> raw = h5::read_doubles(f, ds);
  if (pathways) {
    if (!h5::exists(f, "/pathway_strength"))
      fail("file ", path, ": --summary pathways needs /pathway_strength (written by fit and simulate since 2026-12-07; "
           "refit, or use --summary gains)");
    // An older file's strength was J's norm, which the data do not determine (kPathwayStrengthDefinition):
    // refused rather than mixed with the current definition in one cohort.
    const std::string def = h5::has_attr(f, "/pathway_strength", "definition")
                                ? h5::attr_string(f, "/pathway_strength", "definition") : std::string("(none)");
    if (def != kPathwayStrengthDefinition)
      fail("file ", path, ": /pathway_strength is of another definition ('", def, "'; this version factors '",
           kPathwayStrengthDefinition, "'): written by an older cohortnet; rerun its fit (or simulate), or use --summary gains");
    const std::vector<double> st = h5::read_doubles(f, "/pathway_strength");
    if (st.size() != M * M) fail("file ", path, ": /pathway_strength must be [", M, " x ", M, "]");
    const size_t T = size_t(shape[2]);
    for (size_t qs = 0; qs < M * M; ++qs)
      for (size_t t = 0; t < T; ++t) raw[qs * T + t] *= st[qs];
  }
  // Map the file's regions to the cohort list by name.
  std::vector<int> to_cohort(M, -1);
  for (size_t q = 0; q < M; ++q) {
    const auto it = std::find(regions.begin(), regions.end(), names[q]);
    if (it == regions.end()) {
      if (!allow_unknown)
        fail("file ", path, ": region '", names[q], "' (", nd, ") is not in the cohort's region list");
      log::warn(comm, "file ", path, ": region '", names[q], "' is not among the modes' regions; its pairs are ignored");
      continue;
    }
    for (size_t r = 0; r < q; ++r)
      if (names[r] == names[q]) fail("file ", path, ": region '", names[q], "' appears twice in ", nd);
    to_cohort[q] = int(it - regions.begin());
    a.regions.push_back(to_cohort[q]);
  }
  std::sort(a.regions.begin(), a.regions.end());
  const int P = L.P();
  a.present = present_rows(L, a.regions);
  // Fitted gains (fit --gains inputs): a target region whose gains the fit did not keep has gain 1
  // by construction, which says nothing about its pathways' use: its rows are masked like absent ones.
  if ((dataset == "/gains" || dataset == "/pathways") && h5::exists(f, "/gains_model/kept")) {
    const auto kept = h5::read_ints(f, "/gains_model/kept");
    if (kept.size() != M) fail("file ", path, ": /gains_model/kept has ", kept.size(), " entries for ", M, " regions");
    for (size_t q = 0; q < M; ++q)
      if (!kept[q] && to_cohort[q] >= 0)
        for (size_t s = 0; s < M; ++s)
          if (to_cohort[s] >= 0) {
            const int p = L.row(to_cohort[q], to_cohort[s]);
            if (p >= 0) a.present[size_t(p)] = 0;
          }
    if (std::find(a.present.begin(), a.present.end(), std::uint8_t(1)) == a.present.end())
      fail("file ", path, ": the fit kept gains in none of its target regions (/gains_model/kept), so --summary ",
           dataset == "/pathways" ? "pathways" : "gains", " has nothing of this animal to factor (use --summary rms)");
  }
  a.X.assign(size_t(P) * size_t(a.T), 0.0);
  const size_t T = size_t(a.T);
  for (size_t q = 0; q < M; ++q)
    for (size_t s = 0; s < M; ++s) {
      if (to_cohort[q] < 0 || to_cohort[s] < 0) continue;
      const int p = L.row(to_cohort[q], to_cohort[s]);
      if (p < 0) continue;  // self pair, excluded
      const double* src = raw.data() + (q * M + s) * T;
      double* dst = a.X.data() + size_t(p) * T;
      for (size_t t = 0; t < T; ++t) {
        double x = src[t];
        if (!std::isfinite(x))
          fail("file ", path, ": dataset ", dataset, " has NaN or Inf at [", q, ", ", s, ", ", t, "]");
        if (x < 0) {
          if (negative == "abs") x = -x;
          else
            fail("file ", path, ": dataset ", dataset, " has a negative value (", x, ") at [", q, ", ", s, ", ", t,
                 "]; the factorization needs non-negative summaries (use --summary rms, exc_rms or inh_rms, or "
                 "--negative abs)");
        }
        dst[t] = x;
      }
    }
  double s = 1.0;
  if (scale == "rms") {
    double ss = 0, n = 0;
    for (int p = 0; p < P; ++p)
      if (a.present[size_t(p)])
        for (size_t t = 0; t < T; ++t) {
          ss += a.X[size_t(p) * T + t] * a.X[size_t(p) * T + t];
          n += 1;
        }
    if (n == 0) fail("file ", path, ": no region pair of ", dataset, " is among the rows of the factorization");
    s = std::sqrt(ss / n);
    if (!(s > 0)) fail("file ", path, ": dataset ", dataset, " is zero on every pair used");
    for (auto& x : a.X) x /= s;
  } else if (scale != "none") {
    fail("option --scale: unknown value '", scale, "' (rms or none)");
  }
  if (scale_out) *scale_out = s;
  a.clear_holdout();
  return a;
}

std::vector<std::string> usable_fits(const std::string& fits_dir, const InputSpec& in, InputRecord& rec) {
  const std::vector<book::AnimalStatus> statuses = book::read_statuses(fits_dir);
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(fits_dir))
    if (e.is_regular_file() && e.path().extension() == ".h5") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  rec = InputRecord{};
  if (statuses.empty()) {  // fits of an older cohortnet: every file, as before, and say so
    log::warn(MPI_COMM_SELF, "modes: ", fits_dir, " has no status files (<animal>.status.json); using every fit file "
              "without checking which animals failed");
    return files;
  }
  rec.have_status = true;
  std::vector<std::string> used;
  std::string reference_fp, reference_file;
  auto leave_out = [&](const std::string& id, const std::string& why) {
    rec.left_out_ids.push_back(id);
    rec.left_out_reasons.push_back(why);
  };
  for (const book::AnimalStatus& st : statuses) {
    const std::string fit = (fs::path(fits_dir) / (st.animal_id + ".h5")).string();
    if (rec.cohort.empty()) rec.cohort = st.cohort;
    if (st.status != "ok" && !(st.status == "poor" && in.include_poor)) {
      leave_out(st.animal_id, st.status + (st.reason.empty() ? "" : ": " + st.reason));
      continue;
    }
    if (!fs::exists(fit)) {
      leave_out(st.animal_id, cat("status ", st.status, " but fit file ", fit, " is missing"));
      continue;
    }
    std::string fp;
    bool no_gains_kept = false;  // a gated fit that kept gains in no target: nothing for gains / pathways
    {
      h5::File f = h5::open_read(fit, MPI_COMM_SELF);
      if (!h5::has_attr(f, "/", "fingerprint")) fail("fit file ", fit, ": has no fingerprint attribute");
      fp = h5::attr_string(f, "/", "fingerprint");
      if ((in.summary == "gains" || in.summary == "pathways") && h5::exists(f, "/gains_model/kept")) {
        const auto kept = h5::read_ints(f, "/gains_model/kept");
        no_gains_kept = std::none_of(kept.begin(), kept.end(), [](std::int64_t k) { return k != 0; });
      }
    }
    // Stale inputs are refused: the study would mix configurations or outdated data.
    if (fp != st.fingerprint)
      fail("fit file ", fit, " does not match its status file ", book::status_path(fits_dir, st.animal_id), " (",
           fit::fingerprint_diff(st.fingerprint, fp), "): another run replaced it; refit the animal");
    if (reference_fp.empty()) {
      reference_fp = book::config_part(fp);
      reference_file = fit;
    } else if (book::config_part(fp) != reference_fp) {
      fail("fit file ", fit, " was fitted with other options than ", reference_file, " (",
           fit::fingerprint_diff(reference_fp, book::config_part(fp)), "); refit the stale animals with one configuration");
    }
    std::error_code e1, e2;
    const auto t_fit = fs::last_write_time(fit, e1), t_src = fs::last_write_time(st.source, e2);
    if (!e1 && !e2 && t_src > t_fit)
      fail("fit file ", fit, " is older than its animal file ", st.source, "; refit the animal (fit without --resume)");
    // One animal whose gains were rejected everywhere costs that animal, not the cohort's modes.
    if (no_gains_kept) {
      leave_out(st.animal_id, cat("the fit kept gains in none of its target regions (/gains_model/kept): --summary ",
                                  in.summary, " has nothing of it"));
      continue;
    }
    used.push_back(fit);
    rec.fingerprints.push_back(fp);
    rec.statuses.push_back(st.status);
  }
  // An animal of the cohort that no fit attempted (an array task that never ran) is missing too.
  if (!rec.cohort.empty() && fs::is_directory(rec.cohort)) {
    const Cohort cohort = read_cohort(rec.cohort, MPI_COMM_SELF);
    for (const CohortAnimal& a : cohort.animals)
      if (std::none_of(statuses.begin(), statuses.end(), [&](const book::AnimalStatus& st) { return st.animal_id == a.animal_id; }) &&
          !fs::exists(fs::path(fits_dir) / (a.animal_id + ".h5")))
        leave_out(a.animal_id, cat("in cohort ", rec.cohort, " but never fitted (no status file, no fit file)"));
  }
  for (const std::string& f : files) {  // a fit without a status file: unknown provenance
    const std::string id = fs::path(f).stem().string();
    if (std::none_of(statuses.begin(), statuses.end(), [&](const book::AnimalStatus& st) { return st.animal_id == id; }))
      leave_out(id, cat("fit file ", f, " has no status file"));
  }
  const int n_all = int(used.size() + rec.left_out_ids.size());
  const int max_failed = in.max_failed >= 0 ? in.max_failed : std::max(1, n_all / 4);
  std::string list;
  for (size_t i = 0; i < rec.left_out_ids.size(); ++i)
    list += (i ? "; " : "") + rec.left_out_ids[i] + " (" + rec.left_out_reasons[i] + ")";
  if (int(rec.left_out_ids.size()) > max_failed)
    fail("modes: ", rec.left_out_ids.size(), " of ", n_all, " animals failed or were left out, more than --max-failed ",
         max_failed, ": ", list);
  if (!rec.left_out_ids.empty())
    log::warn(MPI_COMM_SELF, "modes: leaving out ", rec.left_out_ids.size(), " of ", n_all, " animals (--max-failed ",
              max_failed, "): ", list);
  if (used.empty()) fail("modes: no animal of ", fits_dir, " has a usable fit (status ok)");
  return used;
}

LoadedCohort load_cohort(const InputSpec& in, MPI_Comm comm) {
  LoadedCohort c;
  std::string err;
  std::vector<std::string> files;
  // Which folder holds the per-animal summaries.
  const bool has_fits = fs::is_directory(fs::path(in.dir) / "fits");
  const bool has_truth = fs::is_directory(fs::path(in.dir) / "truth");
  c.source = in.source;
  if (!fs::is_directory(in.dir)) err = cat("option --input: folder ", in.dir, " does not exist");
  else if (in.source == "auto") c.source = has_fits ? "fits" : (has_truth ? "truth" : "");
  if (err.empty() && c.source != "fits" && c.source != "truth")
    err = in.source == "auto" ? cat("option --input: ", in.dir, " has neither fits/ (fit outputs) nor truth/ (simulator ground truth)")
                              : cat("option --source: unknown value '", in.source, "' (auto, fits or truth)");
  if (err.empty()) {
    const fs::path sub = fs::path(in.dir) / c.source;
    if (!fs::is_directory(sub)) err = cat("option --input: ", sub.string(), " does not exist");
    else if (c.source == "fits" && comm_rank(comm) == 0) {
      try {
        files = usable_fits(sub.string(), in, c.record);
      } catch (const std::exception& e) {
        err = e.what();
      }
    } else if (c.source != "fits") {
      for (auto& e : fs::directory_iterator(sub))
        if (e.is_regular_file() && e.path().extension() == ".h5" && e.path().filename() != "cohort.h5")
          files.push_back(e.path().string());
      std::sort(files.begin(), files.end());  // (fits: in animal-id order, aligned with their record)
    }
    if (err.empty() && files.empty() && (c.source != "fits" || comm_rank(comm) == 0))
      err = cat("option --input: no *.h5 files in ", sub.string());
  }
  agree(comm, err);
  if (c.source == "fits") share_record(files, c.record, comm);
  c.files = files;
  // The summary dataset (the same kind in every file).
  c.dataset = c.source == "fits" ? (in.summary == "gains" ? "/gains" : "/currents/" + in.summary) : "/current_" + in.summary;
  if (in.summary == "pathways") c.dataset = "/pathways";
  if (c.source == "fits" && (in.summary == "gains" || in.summary == "pathways")) {
    h5::File f0 = h5::open_read(files.front(), comm);
    if (!h5::exists(f0, "/gains"))
      fail("option --summary gains: ", files.front(), " has no /gains (the fits were made without fit --gains inputs)");
  }
  // Truth files also hold other [M x M x T] pair series (e.g. /gains, the planted mode mix):
  // --summary gains uses /gains when there is no /current_gains.
  if (c.source == "truth") {
    h5::File f0 = h5::open_read(files.front(), comm);
    if (!h5::exists(f0, c.dataset) && h5::exists(f0, "/" + in.summary)) c.dataset = "/" + in.summary;
  }
  // The region list: --regions, the cohort manifest, or the union in order of first appearance.
  const std::string cohort_dir = !in.cohort_dir.empty() ? in.cohort_dir : (c.source == "truth" ? in.dir : "");
  if (!in.regions.empty()) {
    c.region_names = split_list(in.regions);
    c.regions_from = "--regions";
  } else if (!cohort_dir.empty() && fs::exists(fs::path(cohort_dir) / "cohort.ini") &&
             !manifest_regions((fs::path(cohort_dir) / "cohort.ini").string()).empty()) {
    c.region_names = manifest_regions((fs::path(cohort_dir) / "cohort.ini").string());
    c.regions_from = (fs::path(cohort_dir) / "cohort.ini").string();
  } else {
    for (auto& path : files) {
      h5::File f = h5::open_read(path, comm);
      for (auto& n : h5::read_strings(f, names_dataset(f)))
        if (std::find(c.region_names.begin(), c.region_names.end(), n) == c.region_names.end()) c.region_names.push_back(n);
    }
    c.regions_from = "union of the animals' region names";
  }
  if (c.region_names.size() < 2) fail("modes: the cohort's region list has fewer than 2 regions (from ", c.regions_from, ")");
  c.layout = make_layout(int(c.region_names.size()), in.self_pairs);
  std::map<std::string, int> state_index;
  std::vector<std::string> ids;
  for (size_t i = 0; i < files.size(); ++i) {
    double s = 1;
    AnimalMatrix a = load_summary(files[i], c.dataset, c.layout, c.region_names, in.scale, in.negative, false, &s, comm);
    a.seed_id = i;
    if (std::find(ids.begin(), ids.end(), a.id) != ids.end())
      fail("file ", files[i], ": animal id '", a.id, "' is used by another file");
    ids.push_back(a.id);
    // Behaviour: truth /states, or the animal file's /behaviour (+ names) in the cohort folder.
    {
      h5::File f = h5::open_read(files[i], comm);
      std::vector<std::int64_t> st;
      std::vector<std::string> names;
      std::string where;
      if (h5::exists(f, "/states")) {
        st = h5::read_ints(f, "/states");
        where = files[i] + ":/states";
      } else if (!cohort_dir.empty() && fs::exists(fs::path(cohort_dir) / (a.id + ".h5"))) {
        const std::string ap = (fs::path(cohort_dir) / (a.id + ".h5")).string();
        h5::File g = h5::open_read(ap, comm);
        if (h5::exists(g, "/behaviour")) {
          st = h5::read_ints(g, "/behaviour");
          if (h5::exists(g, "/behaviour_names")) names = h5::read_strings(g, "/behaviour_names");
          where = ap + ":/behaviour";
        }
      }
      if (!st.empty()) {
        if (st.size() != size_t(a.T)) {
          log::warn(comm, where, " has ", st.size(), " samples but ", c.dataset, " has ", a.T, "; behaviour ignored for ", a.id);
        } else {
          a.states.resize(st.size());
          for (size_t t = 0; t < st.size(); ++t) {
            if (st[t] < 0) fail(where, ": negative state at sample ", t);
            const std::string name = size_t(st[t]) < names.size() ? names[size_t(st[t])] : cat("state", st[t]);
            auto it = state_index.find(name);
            if (it == state_index.end()) {
              it = state_index.emplace(name, int(c.state_names.size())).first;
              c.state_names.push_back(name);
            }
            a.states[t] = it->second;
          }
        }
      }
    }
    c.scales.push_back(s);
    c.animals.push_back(std::move(a));
  }
  return c;
}

namespace {
void put(h5::File& f, const std::string& name, const std::vector<double>& v, std::vector<hsize_t> shape) {
  h5::write_doubles(f, name, shape, v.data());
}
void put_ints(h5::File& f, const std::string& name, const std::vector<int>& v, std::vector<hsize_t> shape) {
  std::vector<std::int64_t> w(v.begin(), v.end());
  h5::write_ints(f, name, shape, w.data());
}
}  // namespace

std::string summary_table(const LoadedCohort& c, const ModesResult& r, const ModesConfig& cfg) {
  std::ostringstream os;
  os << "# cohortnet modes: " << r.K << " shared modes over " << c.region_names.size() << " regions, " << r.A
     << " animals (" << c.source << " " << c.dataset << ")\n";
  if (r.have_selection) os << "# K chosen: " << r.selection.reason << "\n# rule: " << r.selection.rule << "\n";
  for (size_t i = 0; i < c.record.left_out_ids.size(); ++i)
    os << "# left out: " << c.record.left_out_ids[i] << " (" << c.record.left_out_reasons[i] << ")\n";
  os << "# stability across the " << r.starts_at_best << " starts at the best objective: " << std::setprecision(4) << r.stability << "\n";
  if (r.sparsify_accepted >= 0)
    os << "# sparsifying step (--sparsify): " << r.sparsify_accepted << " move(s) kept, objective "
       << r.objective_before_sparsify << " -> " << r.fit.objective << "\n";
  if (r.have_conservation) {
    os << "# conserved = Bonferroni-corrected p (min(1, K p)) < " << cfg.alpha << " and similarity >= "
       << cfg.min_similarity << "; similarity = "
       << cfg.mode_stat << " over animals of the cosine between the animal's own mode and the mode fitted without it;\n"
       << "# p = (1 + #null >= observed)/(1 + " << cfg.permutations << "), all animals' region labels permuted at once, "
       << "resolution " << r.p_resolution << ";\n# and presence in every animal: p_presence = max over the 'tested' animals "
       << "(those whose own permutation test can resolve the mode) of the animal's p against its own permutations, < "
       << cfg.presence_alpha << "\n";
    os << std::left << std::setw(6) << "mode" << std::setw(11) << "conserved" << std::setw(12) << "similarity"
       << std::setw(12) << "mean_sim" << std::setw(12) << "null_mean" << std::setw(12) << "p" << std::setw(12)
       << "p_bonf" << std::setw(12) << "p_presence" << std::setw(9) << "tested";
    if (r.have_behaviour) os << std::setw(12) << "behav_agree";
    if (r.have_ceiling) os << std::setw(10) << "ceiling";
    os << "top_pairs\n";
    for (int k = 0; k < r.K; ++k) {
      double ms = 0, nm = 0;
      for (int a = 0; a < r.A; ++a) ms += r.similarity[size_t(a) * size_t(r.K) + size_t(k)] / r.A;
      const int n = int(r.null_statistic.size()) / r.K;
      for (int d = 0; d < n; ++d) nm += r.null_statistic[size_t(d) * size_t(r.K) + size_t(k)] / n;
      // The three strongest pairs of the mode, target<-source.
      std::vector<std::pair<double, int>> w;
      for (int p = 0; p < r.P; ++p) w.emplace_back(r.fit.W[size_t(p) * size_t(r.K) + size_t(k)], p);
      std::sort(w.rbegin(), w.rend());
      std::string top;
      for (size_t i = 0; i < std::min<size_t>(3, w.size()); ++i) {
        const auto [q, s] = c.layout.pairs[size_t(w[i].second)];
        top += (i ? "," : "") + c.region_names[size_t(q)] + "<-" + c.region_names[size_t(s)];
      }
      os << std::left << std::setw(6) << k << std::setw(11) << (r.conserved[size_t(k)] ? "yes" : "no") << std::setw(12)
         << std::setprecision(4) << r.statistic[size_t(k)] << std::setw(12) << ms << std::setw(12) << nm << std::setw(12)
         << r.p_value[size_t(k)] << std::setw(12) << r.p_corrected[size_t(k)] << std::setw(12) << r.p_presence[size_t(k)]
         << std::setw(9) << r.n_tested[size_t(k)];
      if (r.have_behaviour) os << std::setw(12) << r.agreement[size_t(k)];
      if (r.have_ceiling) os << std::setw(10) << r.ceiling_mean[size_t(k)];
      os << top << "\n";
    }
    os << "\n# leave-one-animal-out conservation index = (R2_shared - R2_null)/(R2_own - R2_null)\n";
    os << std::left << std::setw(16) << "animal" << std::setw(12) << "index" << std::setw(12) << "R2_shared"
       << std::setw(12) << "R2_own" << std::setw(12) << "R2_null" << "\n";
    for (int a = 0; a < r.A; ++a)
      os << std::left << std::setw(16) << c.animals[size_t(a)].id << std::setw(12) << r.index[size_t(a)] << std::setw(12)
         << r.r2_shared[size_t(a)] << std::setw(12) << r.r2_own[size_t(a)] << std::setw(12) << r.r2_null[size_t(a)] << "\n";
  } else {
    os << "# conservation not computed (--no-conserve)\n";
  }
  return os.str();
}

void write_results(const std::string& out_dir, const LoadedCohort& c, const ModesResult& r, const ModesConfig& cfg,
                   const InputSpec& in, const std::string& config_text, const TruthCheck* truth, MPI_Comm comm) {
  std::string err;
  if (comm_rank(comm) == 0) {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) err = cat("option --out: cannot create folder ", out_dir, ": ", ec.message());
  }
  agree(comm, err);
  const int K = r.K, P = r.P, A = r.A, R = int(c.region_names.size());
  const hsize_t uK = hsize_t(K), uP = hsize_t(P), uA = hsize_t(A), uR = hsize_t(R);
  h5::AtomicFile out((fs::path(out_dir) / "modes.h5").string(), comm);
  h5::File& f = out.file();
  h5::set_attr(f, "/", "format", "cohortnet-modes");
  h5::set_attr(f, "/", "format_version", std::int64_t(1));
  h5::set_attr(f, "/", "config", config_text);
  h5::set_attr(f, "/", "seed", std::int64_t(cfg.seed));
  h5::set_attr(f, "/", "source", c.source);
  h5::set_attr(f, "/", "summary", in.summary);
  h5::set_attr(f, "/", "dataset", c.dataset);
  h5::set_attr(f, "/", "scale", in.scale);
  h5::set_attr(f, "/", "self_pairs", std::int64_t(in.self_pairs ? 1 : 0));
  h5::set_attr(f, "/", "regions_from", c.regions_from);
  h5::set_attr(f, "/", "K", std::int64_t(K));
  // --sparsify: moves kept (-1: off) and the best start's objective before them.
  h5::set_attr(f, "/", "sparsify_accepted", std::int64_t(r.sparsify_accepted));
  if (r.sparsify_accepted >= 0) h5::set_attr(f, "/", "objective_before_sparsify", r.objective_before_sparsify);
  h5::write_strings(f, "/region_names", c.region_names);
  // A simulated cohort's modes against its truth: "pass", "fail", or "none" (no truth: real data).
  const bool checked = truth != nullptr && truth->have;
  h5::set_attr(f, "/", "truth_check", checked ? (truth->pass ? "pass" : "fail") : "none");
  if (checked) {
    const hsize_t KT = hsize_t(truth->matched.size());  // every true mode (k_true counts the visible ones)
    h5::ensure_group(f, "/truth_check");
    put_ints(f, "/truth_check/matched", truth->matched, {KT});
    put(f, "/truth_check/cosine", truth->cosine, {KT});
    put_ints(f, "/truth_check/truly_conserved", truth->truly_conserved, {KT});
    put_ints(f, "/truth_check/called_conserved", truth->called_conserved, {KT});
    put_ints(f, "/truth_check/visible", truth->visible, {KT});
    h5::set_attr(f, "/truth_check", "file", fs::absolute(truth->file).string());
    h5::set_attr(f, "/truth_check", "pass", std::int64_t(truth->pass ? 1 : 0));
    h5::set_attr(f, "/truth_check", "verdict", truth->verdict);
    h5::set_attr(f, "/truth_check", "k_true", std::int64_t(truth->k_true));
    h5::set_attr(f, "/truth_check", "k_found", std::int64_t(truth->k_found));
    h5::set_attr(f, "/truth_check", "mean_cosine", truth->mean_cosine);
    h5::set_attr(f, "/truth_check", "min_cosine", truth->min_cosine);
    h5::set_attr(f, "/truth_check", "conserved_found", std::int64_t(truth->conserved_found));
    h5::set_attr(f, "/truth_check", "n_conserved", std::int64_t(truth->n_conserved));
    h5::set_attr(f, "/truth_check", "false_conserved", std::int64_t(truth->false_conserved));
    h5::set_attr(f, "/truth_check", "rule",
                 "pass: K found = the true number of modes (or of the shared ones), mean matched cosine over the shared true modes (unmatched: 0) >= min_cosine, "
                 "all but at most one shared true mode matched to a mode called conserved, none of the others called "
                 "conserved (Hungarian matching on cosine over the factorized region pairs)");
  }
  std::vector<std::string> ids;
  for (auto& a : c.animals) ids.push_back(a.id);
  h5::write_strings(f, "/animal_ids", ids);
  h5::write_strings(f, "/animal_files", c.files);
  // What the modes were made from (the report compares it with the fits it finds).
  if (c.record.have_status) {
    h5::write_strings(f, "/animal_fingerprints", c.record.fingerprints);
    h5::write_strings(f, "/animal_status", c.record.statuses);
    h5::set_attr(f, "/", "cohort", c.record.cohort);
  }
  std::string left;
  for (size_t i = 0; i < c.record.left_out_ids.size(); ++i) left += (i ? "," : "") + c.record.left_out_ids[i];
  h5::set_attr(f, "/", "left_out", left);
  if (!c.record.left_out_ids.empty()) {
    h5::ensure_group(f, "/left_out");
    h5::write_strings(f, "/left_out/animal_ids", c.record.left_out_ids);
    h5::write_strings(f, "/left_out/reasons", c.record.left_out_reasons);
  }
  put(f, "/scale", c.scales, {uA});
  std::vector<int> pairs, present(size_t(A) * size_t(R), 0);
  for (auto& [q, s] : c.layout.pairs) {
    pairs.push_back(q);
    pairs.push_back(s);
  }
  put_ints(f, "/pairs", pairs, {uP, 2});
  for (int a = 0; a < A; ++a)
    for (int q : c.animals[size_t(a)].regions) present[size_t(a) * size_t(R) + size_t(q)] = 1;
  put_ints(f, "/regions_present", present, {uA, uR});
  // modes [K x R x R] (target x source); pairs not in the factorization (self pairs) are 0.
  std::vector<double> modes(size_t(K) * size_t(R) * size_t(R), 0.0);
  for (int p = 0; p < P; ++p)
    for (int k = 0; k < K; ++k) {
      const auto [q, s] = c.layout.pairs[size_t(p)];
      modes[(size_t(k) * size_t(R) + size_t(q)) * size_t(R) + size_t(s)] = r.fit.W[size_t(p) * size_t(K) + size_t(k)];
    }
  put(f, "/modes", modes, {uK, uR, uR});
  put(f, "/W", r.fit.W, {uP, uK});
  h5::set_attr(f, "/W", "objective", r.fit.objective);
  h5::set_attr(f, "/W", "iterations", std::int64_t(r.fit.iterations));
  h5::set_attr(f, "/W", "best_start", std::int64_t(r.best_start));
  h5::set_attr(f, "/W", "stability", r.stability);
  h5::set_attr(f, "/W", "starts_at_best", std::int64_t(r.starts_at_best));
  h5::ensure_group(f, "/activations");
  for (int a = 0; a < A; ++a) put(f, "/activations/" + c.animals[size_t(a)].id, r.fit.H[size_t(a)], {uK, hsize_t(c.animals[size_t(a)].T)});
  h5::ensure_group(f, "/starts");
  const hsize_t S = hsize_t(r.start_objectives.size());
  put(f, "/starts/objective", r.start_objectives, {S});
  std::vector<double> allW;
  for (auto& w : r.start_W) allW.insert(allW.end(), w.begin(), w.end());
  put(f, "/starts/W", allW, {S, uP, uK});
  if (r.have_selection) {
    const auto& s = r.selection;
    const hsize_t nK = hsize_t(s.k_values.size());
    h5::ensure_group(f, "/select_k");
    put_ints(f, "/select_k/k", s.k_values, {nK});
    put(f, "/select_k/cv_error", s.cv_error, {nK, hsize_t(s.n_folds)});
    put(f, "/select_k/cv_error_mean", s.cv_mean, {nK});
    put(f, "/select_k/cv_error_se", s.cv_se, {nK});
    put(f, "/select_k/stability", s.stability, {nK});
    put_ints(f, "/select_k/starts_at_best", s.starts_at_best, {nK});
    put_ints(f, "/select_k/starts_run", s.starts_run, {nK});
    put(f, "/select_k/objective", s.objective, {nK});
    h5::set_attr(f, "/select_k", "k_chosen", std::int64_t(s.k_chosen));
    h5::set_attr(f, "/select_k", "rule", s.rule);
    h5::set_attr(f, "/select_k", "cv", cfg.k_cv);
    h5::set_attr(f, "/select_k", "cv_average", cfg.k_cv_average);
    h5::set_attr(f, "/select_k", "reason", s.reason);
  }
  if (r.have_conservation) {
    h5::ensure_group(f, "/conservation");
    put(f, "/conservation/index", r.index, {uA});
    put(f, "/conservation/r2_shared", r.r2_shared, {uA});
    put(f, "/conservation/r2_own", r.r2_own, {uA});
    put(f, "/conservation/r2_null", r.r2_null, {uA});
    put(f, "/conservation/r2_null_samples", r.r2_null_samples, {uA, hsize_t(cfg.loo_null)});
    std::vector<double> lw, ow;
    for (auto& w : r.loo_W) lw.insert(lw.end(), w.begin(), w.end());
    for (auto& w : r.own_W) ow.insert(ow.end(), w.begin(), w.end());
    put(f, "/conservation/loo_W", lw, {uA, uP, uK});
    put(f, "/conservation/own_W", ow, {uA, uP, uK});
    h5::set_attr(f, "/conservation", "definition",
                 "index = (R2_shared - R2_null)/(R2_own - R2_null); R2 = 1 - SSE/SST over observed entries, SST centred "
                 "per row; R2_shared: projection (H only) on W fitted without the animal; R2_own: W and H fitted on the "
                 "animal alone; R2_null: mean R2 of projections after permuting the animal's region labels");
    h5::ensure_group(f, "/mode_test");
    put(f, "/mode_test/similarity", r.similarity, {uA, uK});
    put(f, "/mode_test/statistic", r.statistic, {uK});
    put(f, "/mode_test/null", r.null_statistic, {hsize_t(cfg.permutations), uK});
    put(f, "/mode_test/p_value", r.p_value, {uK});
    put(f, "/mode_test/p_corrected", r.p_corrected, {uK});
    put(f, "/mode_test/p_presence", r.p_presence, {uK});
    put(f, "/mode_test/p_ideal", r.p_ideal, {uA, uK});
    put_ints(f, "/mode_test/resolved", r.resolved, {uA, uK});
    put(f, "/mode_test/p_animal", r.p_animal, {uA, uK});
    put_ints(f, "/mode_test/testable", r.testable, {uA, uK});
    put_ints(f, "/mode_test/n_tested", r.n_tested, {uK});
    put_ints(f, "/mode_test/conserved", r.conserved, {uK});
    put(f, "/conservation/mode_gain", r.mode_gain, {uA, uK});
    h5::set_attr(f, "/mode_test", "statistic", cfg.mode_stat);
    h5::set_attr(f, "/mode_test", "alpha", cfg.alpha);
    h5::set_attr(f, "/mode_test", "min_similarity", cfg.min_similarity);
    h5::set_attr(f, "/mode_test", "min_observed", cfg.min_observed);
    h5::set_attr(f, "/mode_test", "presence_alpha", cfg.presence_alpha);
    h5::set_attr(f, "/mode_test", "permutations", std::int64_t(cfg.permutations));
    h5::set_attr(f, "/mode_test", "p_resolution", r.p_resolution);
    h5::set_attr(f, "/mode_test", "definition",
                 "similarity[a,k]: cosine over animal a's region pairs between its own mode (fitted on a alone, "
                 "Hungarian-matched) and mode k fitted without a (aligned to /W); testable[a,k]: >= min_observed of mode k's "
                 "squared norm on a's rows; statistic = mode_stat over testable animals; null: each animal's region labels "
                 "permuted (targets and sources alike), own modes re-matched; p_value[k] = (1 + #null statistic >= "
                 "statistic)/(1 + permutations); p_animal[a,k] = (1 + #draws with a's null similarity >= similarity[a,k])/(1 + "
                 "permutations); p_ideal[a,k]: (1 + #draws in which mode k of W_{-a}, relabelled, still has cosine >= 0.9 with itself on a's rows)/(1 + permutations), the resolution of the animal's test; "
                 "resolved = testable and p_ideal < presence_alpha; p_presence[k] = max over resolved animals of p_animal "
                 "(intersection-union test of presence in every resolved animal); conserved = min(1, K p_value) < alpha and "
                 "p_presence < presence_alpha and n_tested >= 2 and statistic >= min_similarity");
  }
  if (r.have_ceiling) {
    h5::ensure_group(f, "/ceiling");
    put(f, "/ceiling/similarity", r.ceiling, {uA, uK});
    put(f, "/ceiling/mean", r.ceiling_mean, {uK});
    h5::set_attr(f, "/ceiling", "sets", std::int64_t(r.ceiling_sets));
    h5::set_attr(f, "/ceiling", "definition",
                 "similarity[a,k]: mean over the --ceiling-fits sets of the cosine (over a's rows) between a's own mode k "
                 "(/conservation/own_W) and a's own modes fitted the same way from that set's currents, Hungarian-matched; "
                 "mean[k]: mean over animals. What a perfectly conserved mode can reach given the non-unique fitted J");
  }
  if (r.have_behaviour) {
    const hsize_t nS = hsize_t(r.state_names.size());
    h5::ensure_group(f, "/behaviour");
    h5::write_strings(f, "/behaviour/state_names", r.state_names);
    put(f, "/behaviour/profiles", r.profiles, {uA, uK, nS});
    put(f, "/behaviour/agreement", r.agreement, {uK});
    h5::set_attr(f, "/behaviour", "agreement_all", r.agreement_all);
    h5::set_attr(f, "/behaviour", "definition",
                 "profiles[a,k,s] = mean activation of mode k in state s / mean activation of mode k (animal a); "
                 "agreement[k] = mean over animal pairs of the Pearson correlation of their profiles (common states)");
  }
  out.commit();
  // The plain-text table, also atomic (rank 0 writes a temporary and renames it).
  std::string table = summary_table(c, r, cfg);
  if (checked) table += "truth check (" + truth->file + "): " + (truth->pass ? "pass: " : "FAIL: ") + truth->verdict + "\n";
  err.clear();
  if (comm_rank(comm) == 0) {
    try {
      book::write_text_atomic((fs::path(out_dir) / "modes_summary.txt").string(), table);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  agree(comm, err);
}

SavedModes read_modes(const std::string& path, MPI_Comm comm) {
  h5::File f = h5::open_read(path, comm);
  if (!h5::has_attr(f, "/", "format") || h5::attr_string(f, "/", "format") != "cohortnet-modes")
    fail("file ", path, ": not a cohortnet modes file (attribute format is not 'cohortnet-modes')");
  SavedModes m;
  m.region_names = h5::read_strings(f, "/region_names");
  m.self_pairs = h5::attr_int(f, "/", "self_pairs") != 0;
  m.summary = h5::attr_string(f, "/", "summary");
  m.scale = h5::attr_string(f, "/", "scale");
  const auto shape = h5::dims(f, "/W");
  if (shape.size() != 2) fail("file ", path, ": /W must be 2-D");
  m.K = int(shape[1]);
  m.W = h5::read_doubles(f, "/W");
  const PairLayout L = make_layout(int(m.region_names.size()), m.self_pairs);
  if (shape[0] != hsize_t(L.P())) fail("file ", path, ": /W has ", shape[0], " rows, expected ", L.P(), " region pairs");
  return m;
}

double project_file(const std::string& file, const std::string& modes_path, const std::string& out_path,
                    const std::string& summary_override, MPI_Comm comm) {
  const SavedModes m = read_modes(modes_path, comm);
  const std::string summary = summary_override.empty() ? m.summary : summary_override;
  const std::string ds = summary_dataset(file, summary, comm);
  if (ds.empty()) fail("file ", file, ": has neither /currents/", summary, " nor /current_", summary);
  const PairLayout L = make_layout(int(m.region_names.size()), m.self_pairs);
  double scale = 1;
  AnimalMatrix a = load_summary(file, ds, L, m.region_names, m.scale, "error", true, &scale, comm);
  const std::vector<double> H = project(a, m.W, L.P(), m.K);
  const double r2 = r2_observed(a, m.W, H, L.P(), m.K);
  h5::AtomicFile out(out_path, comm);
  h5::File& f = out.file();
  h5::set_attr(f, "/", "format", "cohortnet-modes-projection");
  h5::set_attr(f, "/", "animal_id", a.id);
  h5::set_attr(f, "/", "input", file);
  h5::set_attr(f, "/", "dataset", ds);
  h5::set_attr(f, "/", "modes", modes_path);
  h5::set_attr(f, "/", "r2", r2);
  h5::set_attr(f, "/", "scale", scale);
  h5::write_doubles(f, "/activations", {hsize_t(m.K), hsize_t(a.T)}, H.data());
  std::vector<std::string> used;
  for (int q : a.regions) used.push_back(m.region_names[size_t(q)]);
  h5::write_strings(f, "/regions_used", used);
  out.commit();
  return r2;
}

}  // namespace cohortnet::modes
