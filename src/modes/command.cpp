#include "modes/command.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "core/text.hpp"
#include "modes/io.hpp"
#include "modes/truth.hpp"

namespace cohortnet {

namespace modes {

namespace {
// SIGTERM (a Slurm time limit, scancel): modes writes its outputs only at the end, by rename, so
// nothing half-written is left; it releases its lock and exits 75, and a rerun starts it again.
char g_lock_path[4096] = {0};
extern "C" void cohortnet_modes_on_sigterm(int) {
  if (g_lock_path[0]) ::unlink(g_lock_path);
  ::_exit(75);
}
void install_modes_stop(const std::string& lock_path) {
  std::snprintf(g_lock_path, sizeof g_lock_path, "%s", lock_path.c_str());
  struct sigaction sa {};
  sa.sa_handler = cohortnet_modes_on_sigterm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}
}  // namespace

void options_from(const po::variables_map& vm, InputSpec& in, ModesConfig& cfg) {
  auto s = [&](const char* k) { return vm[k].as<std::string>(); };
  auto i = [&](const char* k) { return vm[k].as<int>(); };
  auto d = [&](const char* k) { return vm[k].as<double>(); };
  if (vm.count("input")) in.dir = s("input");
  in.source = s("source");
  in.summary = s("summary");
  if (vm.count("regions")) in.regions = s("regions");
  if (vm.count("cohort")) in.cohort_dir = s("cohort");
  in.self_pairs = vm["self-pairs"].as<bool>();
  in.scale = s("scale");
  in.negative = s("negative");
  in.max_failed = i("max-failed");
  if (in.max_failed < -1) fail("option --max-failed: must be >= 0 animals, or -1 (a quarter of the cohort, at least 1)");
  in.include_poor = vm["include-poor"].as<bool>();
  if (in.source != "auto" && in.source != "fits" && in.source != "truth")
    fail("option --source: unknown value '", in.source, "' (auto, fits or truth)");
  if (in.scale != "rms" && in.scale != "none") fail("option --scale: unknown value '", in.scale, "' (rms or none)");
  if (in.negative != "error" && in.negative != "abs")
    fail("option --negative: unknown value '", in.negative, "' (error or abs)");
  if (in.summary.empty() || in.summary.find('/') != std::string::npos)
    fail("option --summary: '", in.summary, "' is not a summary name (rms, mean, exc_rms, ...)");
  const std::string k = s("k");
  if (k == "auto") {
    cfg.k = 0;
  } else {
    try {
      size_t pos = 0;
      cfg.k = std::stoi(k, &pos);
      if (pos != k.size()) throw std::invalid_argument(k);
    } catch (const std::exception&) {
      fail("option --k: '", k, "' is neither 'auto' nor a number of modes");
    }
    if (cfg.k < 1) fail("option --k: the number of modes must be at least 1 (got ", cfg.k, ")");
  }
  cfg.k_min = i("k-min");
  cfg.k_max = i("k-max");
  if (cfg.k_min < 1 || cfg.k_max < cfg.k_min) fail("option --k-min/--k-max: need 1 <= k-min <= k-max (got ", cfg.k_min, ", ", cfg.k_max, ")");
  cfg.starts = i("starts");
  if (cfg.starts < 1) fail("option --starts: must be at least 1 (got ", cfg.starts, ")");
  if (cfg.k == 0 && cfg.starts < 2) fail("option --starts: --k auto needs at least 2 starts to measure stability");
  cfg.max_iter = i("max-iter");
  if (cfg.max_iter < 1) fail("option --max-iter: must be at least 1");
  cfg.tol = d("tol");
  if (!(cfg.tol >= 0)) fail("option --tol: must be >= 0");
  const std::string red = s("reduction");
  if (red == "ordered") cfg.reduction = Reduction::ordered;
  else if (red == "sum") cfg.reduction = Reduction::sum;
  else fail("option --reduction: unknown value '", red, "' (ordered or sum)");
  cfg.folds = i("folds");
  if (cfg.folds < 1) fail("option --folds: must be at least 1");
  cfg.k_cv = vm["k-cv"].as<std::string>();
  if (cfg.k_cv != "animals" && cfg.k_cv != "entries")
    fail("option --k-cv: must be animals or entries (got '", cfg.k_cv, "')");
  cfg.k_cv_average = s("k-cv-average");
  if (cfg.k_cv_average != "geomean" && cfg.k_cv_average != "mean" && cfg.k_cv_average != "median")
    fail("option --k-cv-average: must be geomean, mean or median (got '", cfg.k_cv_average, "')");
  cfg.cv_block = i("cv-block");
  if (cfg.cv_block < 2) fail("option --cv-block: must be at least 2 samples");
  cfg.cv_fraction = d("cv-fraction");
  if (!(cfg.cv_fraction > 0 && cfg.cv_fraction < 0.5)) fail("option --cv-fraction: must be in (0, 0.5) (got ", cfg.cv_fraction, ")");
  cfg.cv_ridge = d("cv-ridge");
  if (!(cfg.cv_ridge >= 0)) fail("option --cv-ridge: must be >= 0");
  cfg.k_cv_tolerance = d("k-cv-tolerance");
  if (!(cfg.k_cv_tolerance >= 0)) fail("option --k-cv-tolerance: must be >= 0");
  cfg.k_min_stability = d("k-min-stability");
  cfg.conserve = !vm["no-conserve"].as<bool>();
  cfg.loo_starts = i("loo-starts");
  cfg.sparsify = vm["sparsify"].as<bool>();
  if (cfg.loo_starts < 1) fail("option --loo-starts: must be at least 1");
  cfg.own_tolerance = d("own-tolerance");
  if (!(cfg.own_tolerance >= 0 || cfg.own_tolerance == -1))
    fail("option --own-tolerance: must be >= 0, or -1 for random starts only (got ", cfg.own_tolerance, ")");
  cfg.loo_null = i("loo-null");
  if (cfg.loo_null < 1) fail("option --loo-null: must be at least 1");
  cfg.permutations = i("permutations");
  if (cfg.permutations < 19) fail("option --permutations: must be at least 19 (got ", cfg.permutations, ")");
  cfg.alpha = d("alpha");
  if (!(cfg.alpha > 0 && cfg.alpha < 1)) fail("option --alpha: must be in (0, 1)");
  cfg.min_similarity = d("min-similarity");
  if (!(cfg.min_similarity >= 0 && cfg.min_similarity <= 1)) fail("option --min-similarity: must be in [0, 1]");
  cfg.min_observed = d("min-observed");
  if (!(cfg.min_observed > 0 && cfg.min_observed <= 1)) fail("option --min-observed: must be in (0, 1]");
  cfg.presence_alpha = d("presence-alpha");
  if (!(cfg.presence_alpha > 0 && cfg.presence_alpha < 1)) fail("option --presence-alpha: must be in (0, 1)");
  cfg.mode_stat = s("mode-stat");
  if (cfg.mode_stat != "min" && cfg.mode_stat != "median" && cfg.mode_stat != "mean")
    fail("option --mode-stat: unknown value '", cfg.mode_stat, "' (min, median or mean)");
  const long long seed = vm["seed"].as<long long>();
  if (seed < 0) fail("option --seed: must be >= 0");
  cfg.seed = std::uint64_t(seed);
}

}  // namespace modes

Command make_modes_command() {
  Command cmd;
  cmd.name = "modes";
  cmd.summary = "shared compositional modes across the cohort and tests of their conservation";
  cmd.add_options = [](po::options_description& d) {
    const modes::ModesConfig def;  // defaults declared once, in ModesConfig
    d.add_options()
      ("input", po::value<std::string>(), "folder with fits/<id>.h5 (fit outputs) or truth/<id>.h5 (a simulated cohort)")
      ("out", po::value<std::string>(), "results folder: writes modes.h5 and modes_summary.txt (with --project: the output file)")
      ("source", po::value<std::string>()->default_value("auto"), "auto | fits | truth (auto: fits/ if present, else truth/)")
      ("summary", po::value<std::string>()->default_value("rms"), "current summary: rms | mean | exc_rms | exc_mean | inh_rms | inh_mean | gains (the pathway gains: truth /gains, or fits of fit --gains inputs, rows of target regions without kept gains masked) | pathways (the gains times each pathway's strength, /pathway_strength: the fitted gains have rms 1 per pathway, their scale is in J)")
      ("regions", po::value<std::string>(), "cohort region list a,b,c (default: cohort.ini, else the union of names)")
      ("cohort", po::value<std::string>(), "cohort folder (cohort.ini, animal files' /behaviour) when --input holds fits")
      ("self-pairs", po::bool_switch(), "include within-region pairs (target == source) as rows (default: excluded)")
      ("scale", po::value<std::string>()->default_value("rms"), "per-animal scaling: rms (divide by the rms of its observed entries) | none")
      ("negative", po::value<std::string>()->default_value("error"), "negative summary values: error | abs")
      ("max-failed", po::value<int>()->default_value(-1), "run over the animals whose fit is ok when at most this many failed or were left out (their ids are recorded); more is an error. -1: a quarter of the animals, at least 1")
      ("include-poor", po::bool_switch(), "also use fits whose status is 'poor' (they did not beat their baseline)")
      ("k", po::value<std::string>()->default_value("auto"), "number of modes, or 'auto' (cross-validation and stability)")
      ("k-min", po::value<int>()->default_value(def.k_min), "smallest K tried by --k auto")
      ("k-max", po::value<int>()->default_value(def.k_max), "largest K tried by --k auto")
      ("starts", po::value<int>()->default_value(def.starts), "random starts of the shared fit (best kept, all recorded)")
      ("max-iter", po::value<int>()->default_value(def.max_iter), "HALS iterations at most")
      ("tol", po::value<double>()->default_value(def.tol), "stop when the objective decreases by less than this fraction")
      ("reduction", po::value<std::string>()->default_value("ordered"), "ordered (bit-identical at any rank count) | sum (smaller messages)")
      ("folds", po::value<int>()->default_value(def.folds), "cross-validation hold-out masks per K (per animal with --k-cv animals)")
      ("k-cv", po::value<std::string>()->default_value(def.k_cv), "--k auto: held-out error of K from animals left out of W (animals: only modes that carry over to an unseen animal count) or from held-out pieces of every animal (entries)")
      ("k-cv-average", po::value<std::string>()->default_value(def.k_cv_average), "--k auto: how the held-out errors of the folds (animals) are averaged: geomean (a relative change counts the same in every animal) | mean (dominated by the worst-predicted animals) | median")
      ("cv-block", po::value<int>()->default_value(def.cv_block), "samples per hold-out block")
      ("cv-fraction", po::value<double>()->default_value(def.cv_fraction), "fraction of (pair, block) pieces held out per fold")
      ("cv-ridge", po::value<double>()->default_value(def.cv_ridge), "ridge on activations in cross-validation fits (keeps H bounded where a mode's rows are held out)")
      ("k-cv-tolerance", po::value<double>()->default_value(def.k_cv_tolerance), "--k auto: K within this relative distance of the lowest held-out error qualify (0: the K with the lowest error; docs/modes.md)")
      ("k-min-stability", po::value<double>()->default_value(def.k_min_stability), "--k auto: and must have at least this stability across starts")
      ("no-conserve", po::bool_switch(), "skip the conservation statistics")
      ("truth-check", po::value<std::string>()->default_value("auto"), "auto: on a simulated cohort (COHORT/truth/cohort.h5) compare the modes with the true ones; the result goes to modes.h5 /truth_check, and a failed check exits 3 | off")
      ("truth-min-cosine", po::value<double>()->default_value(0.85), "truth check: the mean matched cosine to the true shared modes (unmatched: 0) must reach this")
      ("loo-starts", po::value<int>()->default_value(def.loo_starts), "starts of each leave-one-out and single-animal fit")
      ("sparsify", po::value<bool>()->default_value(def.sparsify)->implicit_value(true), "after the best start, the sparsest modes within 1% of its objective (docs/modes.md, \"Sparsifying step\")")
      ("own-tolerance", po::value<double>()->default_value(def.own_tolerance), "an animal's own fit also starts from the cohort's modes fitted without it, kept when its R2 is within this of the best random start's (one animal's factorization is not unique); -1: random starts only")
      ("loo-null", po::value<int>()->default_value(def.loo_null), "label permutations per animal for R2_null")
      ("permutations", po::value<int>()->default_value(def.permutations), "label permutations for the per-mode p-values (resolution 1/(n+1))")
      ("alpha", po::value<double>()->default_value(def.alpha), "a mode is conserved if its Bonferroni-corrected p < alpha (and --min-similarity holds)")
      ("min-similarity", po::value<double>()->default_value(def.min_similarity), "a conserved mode's statistic must also be at least this cosine")
      ("presence-alpha", po::value<double>()->default_value(def.presence_alpha), "a conserved mode must also be present in every animal whose test can resolve it: each animal's presence p (its own region-label permutations) < this")
      ("ceiling-fits", po::value<std::string>(), "DIR1,DIR2,...: other fit outputs of the same cohort (different fit seeds); reports per mode the similarity of each animal's own modes across fits (the ceiling)")
      ("min-observed", po::value<double>()->default_value(def.min_observed), "an animal is tested for a mode if at least this fraction of the mode's squared norm is on its recorded region pairs")
      ("mode-stat", po::value<std::string>()->default_value(def.mode_stat), "per-mode statistic over animals: min | median | mean")
      ("seed", po::value<long long>()->default_value(1), "seed of every random choice (starts, hold-out, permutations)")
      ("project", po::value<std::string>(), "project this animal's summary file on fitted modes (needs --modes)")
      ("modes", po::value<std::string>(), "modes.h5 of an earlier run (for --project)");
  };
  cmd.run = [](const po::variables_map& vm, MPI_Comm comm) -> int {
    using namespace modes;
    InputSpec in;
    ModesConfig cfg;
    collective(comm, [&] { options_from(vm, in, cfg); });
    bool truth_check = true;
    double truth_min_cosine = 0.85;
    collective(comm, [&] {
      const std::string tc = vm["truth-check"].as<std::string>();
      if (tc != "auto" && tc != "on" && tc != "off")
        fail("option --truth-check: must be auto (or on) or off (got '", tc, "')");
      truth_check = tc != "off";
      truth_min_cosine = vm["truth-min-cosine"].as<double>();
      if (!(truth_min_cosine >= 0 && truth_min_cosine <= 1))
        fail("option --truth-min-cosine: must be in [0, 1] (got ", truth_min_cosine, ")");
    });
    if (vm.count("project")) {
      std::string err;
      if (!vm.count("modes")) err = "option --project needs --modes RESULTS/modes.h5";
      agree(comm, err);
      const std::string file = vm["project"].as<std::string>();
      std::string out = vm.count("out") ? vm["out"].as<std::string>() : "";
      if (out.empty()) {
        const auto mp = std::filesystem::path(vm["modes"].as<std::string>());
        out = (mp.parent_path() / ("projection_" + std::filesystem::path(file).stem().string() + ".h5")).string();
      }
      double r2 = 0;
      collective(comm, [&] {
        r2 = project_file(file, vm["modes"].as<std::string>(), out, vm["summary"].defaulted() ? "" : in.summary, comm);
      });
      log::info(comm, "modes: projected ", file, " on ", vm["modes"].as<std::string>(), ": R2 = ", r2, " -> ", out);
      return 0;
    }
    std::string err;
    if (!vm.count("input")) err = "option --input is required (a folder with fits/ or truth/)";
    else if (!vm.count("out")) err = "option --out is required (the results folder)";
    agree(comm, err);
    const auto t0 = std::chrono::steady_clock::now();
    const std::string out = vm["out"].as<std::string>();
    // Before any work: the results folder must take files, and no other run may be writing them.
    book::OutputLock lock;
    int locked = 0;
    if (comm_rank(comm) == 0) {
      err = book::check_writable(out);
      if (err.empty()) {
        err = lock.take((std::filesystem::path(out) / "modes.h5").string());
        locked = err.empty() ? 0 : 1;
      }
    }
    MPI_Bcast(&locked, 1, MPI_INT, 0, comm);
    if (locked) {  // another modes run writes this folder: a documented exit code, not a crash
      if (comm_rank(comm) == 0) std::fprintf(stderr, "cohortnet modes: error: %s\n", err.c_str());
      return book::kExitLocked;
    }
    agree(comm, err);
    if (comm_rank(comm) == 0) install_modes_stop((std::filesystem::path(out) / "modes.h5.lock").string());
    else install_modes_stop("");
    LoadedCohort coh;
    collective(comm, [&] {
      coh = load_cohort(in, comm);
      const int P = coh.layout.P();
      int T = 0;
      for (auto& a : coh.animals) T = T == 0 ? a.T : std::min(T, a.T);
      // More modes than region pairs (or samples) cannot be told apart: refuse, before minutes of work.
      if (cfg.k > 0 && (cfg.k > P || cfg.k > T))
        fail("option --k: ", cfg.k, " modes is more than the ", cfg.k > P ? P : T,
             cfg.k > P ? " region pairs" : " samples of the shortest animal", " (at most ", std::min(P, T), ")");
      const int most = std::min(P, T);
      if (cfg.k == 0 && cfg.k_max > most) {
        if (!vm["k-max"].defaulted() || cfg.k_min > most)
          fail("option --k-", cfg.k_min > most ? "min: " : "max: ", cfg.k_min > most ? cfg.k_min : cfg.k_max,
               " modes is more than the ", most, " region pairs / samples of this cohort");
        cfg.k_max = most;  // the default range, cut to what the cohort can hold
      }
    });
    const LoadedCohort& c = coh;
    log::info(comm, "modes: ", c.animals.size(), " animals, ", c.region_names.size(), " regions (", c.regions_from, "), ",
              c.layout.P(), " region pairs", in.self_pairs ? " (with self pairs)" : " (self pairs excluded)", ", data ",
              c.dataset, ", ", comm_size(comm), " ranks");
    // --ceiling-fits: other RNN fits of the same cohort, read with the same region list and layout.
    std::vector<std::vector<AnimalMatrix>> sets;
    if (vm.count("ceiling-fits")) {
      collective(comm, [&] {
        std::string list = vm["ceiling-fits"].as<std::string>(), names;
        for (size_t q = 0; q < c.region_names.size(); ++q) names += (q ? "," : "") + c.region_names[q];
        for (const std::string& dir : split_list(list)) {
          InputSpec other = in;
          other.dir = dir;
          other.source = "fits";
          other.regions = names;
          LoadedCohort o = load_cohort(other, comm);
          if (o.animals.size() != c.animals.size())
            fail("option --ceiling-fits: ", dir, " has ", o.animals.size(), " animals, --input has ", c.animals.size());
          for (size_t a = 0; a < o.animals.size(); ++a)
            if (o.animals[a].id != c.animals[a].id)
              fail("option --ceiling-fits: ", dir, ": animal ", a, " is ", o.animals[a].id, ", in --input it is ", c.animals[a].id);
          sets.push_back(std::move(o.animals));
        }
        if (sets.empty()) fail("option --ceiling-fits: no folder given");
        if (!cfg.conserve) fail("option --ceiling-fits needs the conservation statistics (not --no-conserve)");
      });
    }
    ModesResult r;
    collective(comm, [&] {
      r = run_modes(c.animals, c.layout, cfg, c.state_names, comm);
      if (!sets.empty()) ceiling(sets, c.layout, cfg, r, comm);
    });
    // A simulated cohort: the modes against its truth (the cohort folder: --cohort, the truth
    // input itself, or the fits' status files).
    TruthCheck truth;
    collective(comm, [&] {
      const std::string cohort_dir =
          !in.cohort_dir.empty() ? in.cohort_dir : (c.source == "truth" ? in.dir : c.record.cohort);
      std::string tf = truth_check && comm_rank(comm) == 0 ? truth_file_of(cohort_dir) : "";
      bcast_string(tf, comm);  // one answer: every rank then opens it collectively
      if (!tf.empty()) truth = check_truth(tf, c, r, truth_min_cosine, comm);
    });
    collective(comm, [&] { write_results(out, c, r, cfg, in, config_record("modes", vm), &truth, comm); });
    log::info(comm, summary_table(c, r, cfg));
    if (truth.have) {
      if (truth.pass) log::info(comm, "modes: truth check (", truth.file, "): ", truth.verdict);
      else log::warn(comm, "modes: truth check (", truth.file, "): ", truth.verdict);
    }
    log::info(comm, "modes: wrote ", out, "/modes.h5 and ", out, "/modes_summary.txt in ",
              log::duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
    g_lock_path[0] = 0;  // the lock goes with `lock`; a later SIGTERM must not remove another run's
    if (truth.have && !truth.pass) {
      log::warn(comm, "modes: exit ", book::kExitTruthFailed, ": the outputs are written, but they are wrong on this "
                "simulated cohort (modes.h5 /truth_check; --truth-check off to skip the check)");
      return book::kExitTruthFailed;
    }
    return 0;
  };
  return cmd;
}

}  // namespace cohortnet
