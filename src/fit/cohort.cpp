#include "fit/cohort.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"

namespace cohortnet::fit {

namespace fs = std::filesystem;

volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void cohortnet_fit_on_sigterm(int) { g_stop_requested = 1; }

void install_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = cohortnet_fit_on_sigterm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
}

double fit_bytes_per_rank(std::int64_t n_units, std::int64_t n_samples, int dt_factor, int ranks, int n_p,
                          int update_block) {
  // The memory plan (memory.hpp) of a fit with n_p regions (region prior; 1: shared prior).
  Params p;
  p.dt_factor = dt_factor;
  p.update_block = update_block;
  p.prior = n_p > 1 ? Prior::Region : Prior::Shared;
  FitSizes s;
  s.n_units = n_units;
  s.n_samples = n_samples;
  s.n_regions = std::max(1, n_p);
  s.ranks = ranks;
  return plan_fit_memory(s, p).peak;
}

double fit_bytes_per_rank(const FitSizes& s, const Params& p) { return plan_fit_memory(s, p).peak; }

Assignment assign_animals(const std::vector<CohortAnimal>& animals, const Params& p, int world_size,
                          int ranks_per_animal, double bytes_per_rank, int n_p) {
  Assignment a;
  const int n_animals = int(animals.size());
  // The memory plan of an animal on `ranks` ranks (n_p: the P count of the old interface, for
  // animals that do not say their regions).
  auto animal_bytes = [&](const CohortAnimal& an, int ranks) {
    FitSizes s;
    s.n_units = an.n_units;
    s.n_samples = an.n_samples;
    s.n_regions = an.n_regions > 0 ? an.n_regions : std::max(1, n_p);
    s.ranks = ranks;
    return fit_bytes_per_rank(s, p);
  };
  int k = ranks_per_animal;
  if (k <= 0) {
    // Automatic: the smallest group size in which the largest animal fits in half the memory.
    k = world_size;
    for (int g = 1; g <= world_size; ++g) {
      bool fits = true;
      for (auto& an : animals)
        if (animal_bytes(an, g) > 0.5 * bytes_per_rank) fits = false;
      if (fits) {
        k = g;
        break;
      }
    }
  }
  int n_groups = std::max(1, std::min(world_size / std::max(1, k), std::max(1, n_animals)));
  // Ranks spread as evenly as possible (each group has at least k when k divides evenly).
  for (int g = 0, first = 0; g < n_groups; ++g) {
    const int size = world_size / n_groups + (g < world_size % n_groups ? 1 : 0);
    a.group_first.push_back(first);
    a.group_size.push_back(size);
    first += size;
  }
  a.group_work.assign(size_t(n_groups), 0.0);
  a.animal_group.assign(size_t(n_animals), 0);
  // Longest processing time first: largest animal to the group that would finish it first.
  std::vector<int> order(static_cast<size_t>(n_animals));
  std::iota(order.begin(), order.end(), 0);
  auto work = [&](int i) {
    const auto& an = animals[size_t(i)];
    return double(an.n_units) * double(an.n_units) * double((an.n_samples - 1) * p.dt_factor + 1);
  };
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return work(x) > work(y); });
  for (int i : order) {
    int best = -1;
    double best_t = 0;
    for (int g = 0; g < n_groups; ++g) {
      const auto& an = animals[size_t(i)];
      if (animal_bytes(an, a.group_size[size_t(g)]) > bytes_per_rank) continue;
      const double t = a.group_work[size_t(g)] + work(i) / a.group_size[size_t(g)];
      if (best < 0 || t < best_t) {
        best = g;
        best_t = t;
      }
    }
    if (best < 0) {  // fits nowhere: the largest group (the fit then reports the memory it lacks)
      best = int(std::max_element(a.group_size.begin(), a.group_size.end()) - a.group_size.begin());
      best_t = a.group_work[size_t(best)] + work(i) / a.group_size[size_t(best)];
    }
    a.animal_group[size_t(i)] = best;
    a.group_work[size_t(best)] = best_t;
  }
  return a;
}

namespace {

// kPoor: written, but its held-out pVar does not beat the best baseline (classify_fit).
enum Status { kOk = 0, kFailed = 1, kInterrupted = 2, kKept = 3, kNotStarted = 4, kLocked = 5, kPoor = 6, kKeptPoor = 7 };
const char* status_name(int s) {
  switch (s) {
    case kOk: return "ok";
    case kPoor: return "poor";
    case kKeptPoor: return "poor (kept from before)";
    case kFailed: return "failed";
    case kInterrupted: return "interrupted";
    case kKept: return "ok (kept from before)";
    case kLocked: return "locked (another run writes it)";
    default: return "not started";
  }
}

struct Outcome {
  int status = kNotStarted;
  int runs = 0;
  double pvar = NAN, seconds = 0;
  // Fit quality (NaN without a split): held-out pVar over non-reset samples, the best baseline's.
  double pvar_heldout = NAN, baseline = NAN, pvar_noise_free = NAN;
  std::string baseline_name;
  std::string message;  // a failure's reason, or the status reason
};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  return s;
}

double bytes_per_rank_world(MPI_Comm world) {
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  const int per_node = comm_size(node);
  MPI_Comm_free(&node);
  double b = double(available_memory_bytes()) / double(per_node);
  MPI_Allreduce(MPI_IN_PLACE, &b, 1, MPI_DOUBLE, MPI_MIN, world);
  return b;
}

}  // namespace

std::string animal_fingerprint(const Params& p, const CohortAnimal& an, std::uint64_t cohort_index) {
  // As the Trainer records it (inputs counted only when they are used).
  return fingerprint(p, an.n_units, an.n_samples, an.sample_interval, cohort_index,
                     p.inputs_used() ? an.n_inputs : 0);
}

int fit_cohort(const CohortOptions& o, MPI_Comm world) {
  const int wrank = comm_rank(world), wsize = comm_size(world);
  collective(world, [&] {
    check_params(o.params);
    if (o.ranks_per_animal < 0) fail("option --ranks-per-animal must be >= 0 (0: automatic), is ", o.ranks_per_animal);
    if (o.ranks_per_animal > wsize)
      fail("option --ranks-per-animal ", o.ranks_per_animal, " is more than the ", wsize, " ranks of this job");
    if (o.checkpoint_every < 0) fail("option --checkpoint-every must be >= 0, is ", o.checkpoint_every);
    if (o.cohort_dir.empty()) fail("option --cohort is required");
    if (!fs::is_directory(o.cohort_dir)) fail("option --cohort: folder ", o.cohort_dir, " does not exist");
    if (o.out_dir.empty()) fail("option --out is required");
    if (!o.init_file.empty() && !fs::exists(o.init_file)) fail("option --init: file ", o.init_file, " does not exist");
  });
  Cohort cohort;
  collective(world, [&] {
    try {
      cohort = read_cohort(o.cohort_dir, world);
    } catch (const Error& e) {
      fail("option --cohort: ", e.what());
    }
  });
  // --animals: keep the selected animals; each keeps its cohort index (its random streams).
  std::vector<std::uint64_t> index_of;
  std::string tag;  // names the summary files of a selection, so concurrent tasks do not clash
  collective(world, [&] {
    if (cohort.animals.empty()) fail("option --cohort: folder ", o.cohort_dir, " has no animal files");
    std::vector<CohortAnimal> kept;
    for (size_t i = 0; i < cohort.animals.size(); ++i) {
      const bool want = o.animals.empty() ||
                        std::find(o.animals.begin(), o.animals.end(), cohort.animals[i].animal_id) != o.animals.end();
      if (want) {
        kept.push_back(cohort.animals[i]);
        index_of.push_back(std::uint64_t(i));
      }
    }
    for (auto& id : o.animals)
      if (std::none_of(kept.begin(), kept.end(), [&](const CohortAnimal& a) { return a.animal_id == id; }))
        fail("option --animals: cohort ", o.cohort_dir, " has no animal '", id, "'");
    if (!o.animals.empty()) {
      for (auto& a : kept) tag += (tag.empty() ? "-" : "+") + a.animal_id;
      if (tag.size() > 80) tag = "-" + kept.front().animal_id + "-and-" + std::to_string(kept.size() - 1) + "-more";
    }
    cohort.animals = kept;
  });
  const int n_animals = int(cohort.animals.size());
  collective(world, [&] {
    if (!o.init_file.empty() && n_animals != 1)
      fail("option --init: applies to one animal, but ", n_animals, " are selected in ", o.cohort_dir,
           " (select one with --animals)");
  });
  const std::string fits_dir = o.out_dir + "/fits", ckpt_dir = fits_dir + "/checkpoints";
  collective(world, [&] {
    std::error_code ec;
    if (wrank == 0) fs::create_directories(ckpt_dir, ec);
    if (ec) fail("option --out: cannot create folder ", ckpt_dir, ": ", ec.message());
  });

  const Assignment asg = assign_animals(cohort.animals, o.params, wsize, o.ranks_per_animal, bytes_per_rank_world(world),
                                        o.params.region_prior() ? std::max(1, int(cohort.regions.size())) : 1);
  const int n_groups = int(asg.group_size.size());
  int my_group = 0;
  for (int g = 0; g < n_groups; ++g)
    if (wrank >= asg.group_first[size_t(g)] && wrank < asg.group_first[size_t(g)] + asg.group_size[size_t(g)]) my_group = g;
  {
    std::ostringstream os;
    os << "# cohortnet fit: animals per group of ranks (work = N^2 x RNN steps per run)\n";
    os << "# " << wsize << " ranks, " << n_groups << " groups, " << n_animals << " animals\n";
    for (int g = 0; g < n_groups; ++g) {
      os << "group " << g << " ranks " << asg.group_first[size_t(g)] << "-"
         << asg.group_first[size_t(g)] + asg.group_size[size_t(g)] - 1 << " (" << asg.group_size[size_t(g)]
         << ", work per rank " << std::setprecision(3) << asg.group_work[size_t(g)] << "):";
      for (int i = 0; i < n_animals; ++i)
        if (asg.animal_group[size_t(i)] == g) {
          const auto& an = cohort.animals[size_t(i)];
          os << " " << an.animal_id << "(N=" << an.n_units << ",T=" << an.n_samples << ")";
        }
      os << "\n";
    }
    log::info(world, os.str().substr(0, os.str().size() - 1));
    collective(world, [&] {
      if (wrank == 0) book::write_text_atomic(fits_dir + "/assignment" + tag + ".txt", os.str());
    });
  }

  MPI_Comm group;
  MPI_Comm_split(world, my_group, wrank, &group);
  const int grank = comm_rank(group);
  std::vector<Outcome> outcomes(static_cast<size_t>(n_animals));
  bool interrupted = false;
  for (int i = 0; i < n_animals; ++i) {
    if (asg.animal_group[size_t(i)] != my_group) continue;
    if (!interrupted) {  // a SIGTERM between animals: start no new one
      int stop = g_stop_requested ? 1 : 0;
      MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, group);
      interrupted = stop != 0;
    }
    if (interrupted) continue;
    const CohortAnimal& an = cohort.animals[size_t(i)];
    const std::string out_path = fits_dir + "/" + an.animal_id + ".h5";
    const std::string ckpt_path = ckpt_dir + "/" + an.animal_id + ".h5";
    Outcome& oc = outcomes[size_t(i)];
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    // One writer per output: a second fit into the same folder leaves this animal to the first.
    book::OutputLock lock;
    int locked = 0;
    if (grank == 0) {
      oc.message = lock.take(out_path);
      locked = oc.message.empty() ? 0 : 1;
    }
    MPI_Bcast(&locked, 1, MPI_INT, 0, group);
    if (locked) {
      oc.status = kLocked;
      if (grank == 0) std::fprintf(stderr, "cohortnet fit: error: animal %s: %s\n", an.animal_id.c_str(), oc.message.c_str());
      continue;
    }
    book::AnimalStatus rec;
    rec.animal_id = an.animal_id;
    rec.output = fs::absolute(out_path).lexically_normal().string();
    rec.source = an.path;
    rec.cohort = cohort.dir;
    if (an.problem.empty()) rec.fingerprint = animal_fingerprint(o.params, an, index_of[size_t(i)]);
    auto record = [&](const char* status, const std::string& reason) {
      if (grank != 0) return;
      rec.status = status;
      rec.reason = reason;
      rec.final_pvar = oc.pvar;
      try {
        book::write_status(fits_dir, rec);
      } catch (const Error& e) {
        std::fprintf(stderr, "cohortnet fit: error: animal %s: %s\n", an.animal_id.c_str(), e.what());
      }
    };
    if (!an.problem.empty()) {  // unreadable, truncated or foreign: this animal fails, the others go on
      oc.status = kFailed;
      oc.message = an.problem;
      if (grank == 0) std::fprintf(stderr, "cohortnet fit: error: animal %s: %s\n", an.animal_id.c_str(), oc.message.c_str());
      record("failed", oc.message);
      continue;
    }
    if (o.resume && fs::exists(out_path)) {
      oc.status = kKept;
      try {
        collective(group, [&] {
          h5::File f = h5::open_read(out_path, group);
          const std::string fp = h5::attr_string(f, "/", "fingerprint");
          const std::string now = animal_fingerprint(o.params, an, index_of[size_t(i)]);
          if (fp != now)
            fail("existing output ", out_path, " was fitted with other parameters (", fingerprint_diff(fp, now),
                 "); remove it, or run without --resume to refit");
          oc.pvar = h5::attr_double(f, "/", "final_pvar");
          auto attr = [&](const char* a) { return h5::has_attr(f, "/", a) ? h5::attr_double(f, "/", a) : NAN; };
          oc.pvar_heldout = attr("pvar_heldout_nonreset");
          oc.baseline = attr("baseline_best");
          oc.pvar_noise_free = attr("pvar_noise_free");
          if (h5::has_attr(f, "/", "baseline_best_name")) oc.baseline_name = h5::attr_string(f, "/", "baseline_best_name");
          if (h5::has_attr(f, "/", "status") && h5::attr_string(f, "/", "status") == "poor") {
            oc.status = kKeptPoor;
            oc.message = h5::attr_string(f, "/", "status_reason");
          }
          oc.runs = int(h5::read_doubles(f, "/pvar").size());
        });
      } catch (const Error& e) {
        oc.status = kFailed;
        oc.message = cat("--resume: ", e.what());
        if (grank == 0) std::fprintf(stderr, "cohortnet fit: error: animal %s: %s\n", an.animal_id.c_str(), oc.message.c_str());
      }
      if (oc.status == kKept || oc.status == kKeptPoor) log::info(group, an.animal_id, ": finished before (", out_path, "), kept");
      record(oc.status == kKept ? "ok" : oc.status == kKeptPoor ? "poor" : "failed",
             oc.status == kKept ? "" : oc.message);
      continue;
    }
    // Until this fit ends, the animal has no result (a kill -9 leaves this, not an old "ok").
    record("interrupted", "fit started, not finished (killed, or still running)");
    try {
      collective(group, [&] {
        if (grank == 0 && !o.resume) {
          std::error_code ec;
          fs::remove(out_path, ec);  // a stale result must not pass for this run's
        }
        AnimalData data = read_animal(an.path, group, /*by_region=*/true);  // outputs stay in file order
        // Given settings the data make unstable are an error naming them (with auto, the Trainer
        // resolves and checks).
        if (!o.params.dt_factor_auto && !o.params.tau_rnn_auto) {
          try {
            check_time_step(data.meta.sample_interval, o.params.dt_factor, o.params.tau_rnn, o.params.dt_factor_given,
                            o.params.tau_rnn_given);
          } catch (const Error& e) {
            if (o.params.dt_factor_given || o.params.tau_rnn_given) fail("animal ", an.animal_id, ": ", e.what());
            // The defaults (the reference's): say it loudly; the status then shows what came of it.
            log::warn(group, an.animal_id, ": the default --dt-factor ", o.params.dt_factor, " and --tau-rnn ",
                      o.params.tau_rnn, " give dt/tau = ",
                      data.meta.sample_interval / o.params.dt_factor / o.params.tau_rnn,
                      " >= 0.5 at this sample interval, where the network saturates; give --tau-rnn auto "
                      "--dt-factor auto (from the data) or settings with dt <= tau/5");
          }
        }
        Init init;
        if (!o.init_file.empty()) {
          if (o.params.dt_factor_auto) fail("option --init needs a given --dt-factor (the noise has one column per RNN step)");
          const std::int64_t L = (data.meta.n_samples - 1) * o.params.dt_factor + 1;
          init = read_init(o.init_file, data.rows, data.meta.n_units, L, group);
        }
        Trainer tr(data, index_of[size_t(i)], o.params, group, init.j0.empty() ? nullptr : &init);
        data.activity.clear();
        data.activity.shrink_to_fit();
        if (o.resume && fs::exists(ckpt_path)) {
          tr.load_checkpoint(ckpt_path);
          log::info(group, an.animal_id, ": resuming from ", ckpt_path, " after run ", tr.runs_done(),
                    tr.inside_run() ? " (inside the next run)" : "");
        }
        const int start = tr.runs_done();
        // SIGTERM is also looked at inside runs (every 100 RNN steps; one small reduction), so a
        // stop does not wait for the end of a long run.
        tr.set_stop_check(
            [&] {
              int st = g_stop_requested ? 1 : 0;
              MPI_Allreduce(MPI_IN_PLACE, &st, 1, MPI_INT, MPI_MAX, group);
              return st != 0;
            },
            100);
        while (!tr.finished()) {
          RunStats s = tr.run_next();
          const int total = tr.total_runs();
          if (!s.complete) {
            tr.save_checkpoint(ckpt_path, o.config_text);
            log::info(group, an.animal_id, ": stop requested (SIGTERM) inside run ", s.run + 1, "/", tr.total_runs(),
                      ": checkpoint ", ckpt_path, "; rerun with --resume");
            interrupted = true;
            break;
          }
          const double el = elapsed();
          const int done_here = tr.runs_done() - start;
          const double left = done_here > 0 ? el / done_here * (total - tr.runs_done()) : 0;
          log::info(group, an.animal_id, ": run ", s.run + 1, "/", total, s.train ? " train" : " free ", " pVar ",
                    std::fixed, std::setprecision(5), s.pvar,
                    s.complete && std::isfinite(tr.pvar_heldout().back()) ? cat(" held out ", tr.pvar_heldout().back()) : "",
                    " chi2 ", std::setprecision(4), s.chi2, " elapsed ", log::duration(el), " left ", log::duration(left));
          if (!tr.stop_reason().empty() && s.train && s.run + 1 == tr.runs_train_used())
            log::info(group, an.animal_id, ": ", tr.stop_reason(), "; its J is kept");
          int stop = g_stop_requested ? 1 : 0;
          MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, group);
          if (stop && !tr.finished()) {
            tr.save_checkpoint(ckpt_path, o.config_text);
            log::info(group, an.animal_id, ": stop requested (SIGTERM): checkpoint ", ckpt_path, " after run ",
                      tr.runs_done(), "/", total, "; rerun with --resume");
            interrupted = true;
            break;
          }
          if (stop) interrupted = true;  // finished anyway: write it, then stop
          if (o.checkpoint_every > 0 && tr.runs_done() % o.checkpoint_every == 0 && !tr.finished())
            tr.save_checkpoint(ckpt_path, o.config_text);
        }
        oc.runs = tr.runs_done();
        oc.pvar = tr.pvar().empty() ? NAN : tr.pvar().back();
        if (tr.finished()) {
          const FitQuality& q = tr.evaluate();
          oc.pvar_noise_free = q.pvar_noise_free;
          {
            std::ostringstream os;
            os << std::fixed << std::setprecision(4) << "in sample pVar " << q.train.all << " (non-reset "
               << q.train.non_reset << "), without the training noise " << q.pvar_noise_free;
            if (q.split) {
              oc.pvar_heldout = q.held.non_reset;
              oc.baseline = q.base->best_non_reset();
              oc.baseline_name = q.base->best_name();
              os << "; held out (" << q.split_description << ", horizon " << q.horizon << ") pVar " << q.held.all
                 << " (non-reset " << q.held.non_reset << ", without noise " << q.held_noise_free.non_reset
                 << "); baselines: " << describe(*q.base);
            }
            log::info(group, an.animal_id, ": ", os.str());
          }
          if (q.verdict.status == FitStatus::Failed)
            fail("animal ", an.animal_id, ": the fit failed (", q.verdict.reason, "); no output written");
          tr.write_result(out_path, o.config_text, o.per_unit_currents);
          if (grank == 0) {
            std::error_code ec;
            fs::remove(ckpt_path, ec);
          }
          const bool poor = q.verdict.status == FitStatus::Poor;
          oc.status = poor ? kPoor : kOk;
          oc.message = poor ? q.verdict.reason : "";  // the summary's message column says what is wrong
          if (poor)
            log::warn(group, an.animal_id, ": POOR FIT, status poor: ", q.verdict.reason,
                      "; its currents are not evidence (written to ", out_path, " with status poor)");
          log::info(group, an.animal_id, ": done, status ", to_string(q.verdict.status), " (", q.verdict.reason,
                    "), pVar ", std::fixed, std::setprecision(5), oc.pvar, " -> ", out_path);
        } else {
          oc.status = kInterrupted;
        }
      });
    } catch (const Error& e) {
      oc.status = kFailed;
      oc.message = e.what();
      if (grank == 0) std::fprintf(stderr, "cohortnet fit: error: %s (other animals continue)\n", e.what());
    }
    if (oc.status == kOk) record("ok", "");
    else if (oc.status == kPoor) record("poor", oc.message);  // modes leaves it out by default
    else if (oc.status == kFailed) record("failed", oc.message);
    else record("interrupted", "stopped by SIGTERM; checkpoint written, rerun with --resume");
    oc.seconds = elapsed();
  }

  // Summary: each group's rank 0 reports its animals to world rank 0.
  std::string mine;
  if (grank == 0)
    for (int i = 0; i < n_animals; ++i)
      if (asg.animal_group[size_t(i)] == my_group) {
        const Outcome& oc = outcomes[size_t(i)];
        std::ostringstream os;
        os.precision(10);
        os << i << "\t" << oc.status << "\t" << oc.runs << "\t" << oc.pvar << "\t" << oc.seconds << "\t"
           << oc.pvar_heldout << "\t" << oc.baseline << "\t" << oc.pvar_noise_free << "\t" << oc.baseline_name << "\t"
           << one_line(oc.message) << "\n";
        mine += os.str();
      }
  int len = int(mine.size());
  std::vector<int> lens(static_cast<size_t>(wsize)), offs(static_cast<size_t>(wsize), 0);
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, world);
  for (int r = 1; r < wsize; ++r) offs[size_t(r)] = offs[size_t(r - 1)] + lens[size_t(r - 1)];
  std::string all(wrank == 0 ? size_t(offs.back() + lens.back()) : 0, '\0');
  MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offs.data(), MPI_CHAR, 0, world);
  int codes[3] = {0, 0, 0};  // any failed, any interrupted or not started, any locked (world rank 0 decides)
  if (wrank == 0) {
    std::istringstream in(all);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string f[10];
      for (int c = 0; c < 9; ++c) std::getline(ls, f[c], '\t');
      std::getline(ls, f[9]);
      Outcome& oc = outcomes[size_t(std::stoi(f[0]))];
      oc.status = std::stoi(f[1]);
      oc.runs = std::stoi(f[2]);
      oc.pvar = std::strtod(f[3].c_str(), nullptr);
      oc.seconds = std::strtod(f[4].c_str(), nullptr);
      oc.pvar_heldout = std::strtod(f[5].c_str(), nullptr);
      oc.baseline = std::strtod(f[6].c_str(), nullptr);
      oc.pvar_noise_free = std::strtod(f[7].c_str(), nullptr);
      oc.baseline_name = f[8];
      oc.message = f[9];
    }
    std::ostringstream txt, csv;
    txt << "# cohortnet fit summary: " << o.cohort_dir << " -> " << fits_dir << "\n";
    csv << "animal_id,n_units,n_samples,group,status,runs_done,final_pvar,pvar_heldout_nonreset,baseline_best,"
           "baseline_name,pvar_noise_free,seconds,message\n";
    int n_ok = 0, n_poor = 0, n_failed = 0, n_other = 0, n_locked = 0;
    for (int i = 0; i < n_animals; ++i) {
      const auto& an = cohort.animals[size_t(i)];
      const Outcome& oc = outcomes[size_t(i)];
      if (oc.status == kOk || oc.status == kKept) ++n_ok;
      else if (oc.status == kPoor || oc.status == kKeptPoor) ++n_poor;
      else if (oc.status == kFailed) ++n_failed;
      else if (oc.status == kLocked) ++n_locked;
      else ++n_other;
      txt << std::left << std::setw(16) << an.animal_id << " N=" << std::setw(6) << an.n_units << " group "
          << asg.animal_group[size_t(i)] << "  " << status_name(oc.status) << "  runs " << oc.runs << "  pVar "
          << std::fixed << std::setprecision(5) << oc.pvar;
      if (std::isfinite(oc.pvar_heldout))
        txt << "  held out " << oc.pvar_heldout << " vs " << oc.baseline_name << " " << oc.baseline;
      txt << "  " << std::setprecision(1) << oc.seconds << " s";
      if (!oc.message.empty()) txt << "  reason: " << oc.message;
      txt << "\n";
      std::string msg = oc.message;
      std::replace(msg.begin(), msg.end(), '"', '\'');
      csv << an.animal_id << "," << an.n_units << "," << an.n_samples << "," << asg.animal_group[size_t(i)] << ","
          << status_name(oc.status) << "," << oc.runs << "," << std::setprecision(10) << oc.pvar << ","
          << oc.pvar_heldout << "," << oc.baseline << "," << oc.baseline_name << "," << oc.pvar_noise_free << ","
          << std::setprecision(2) << oc.seconds << ",\"" << msg << "\"\n";
    }
    txt << "# " << n_ok << " ok, " << n_poor << " poor, " << n_failed << " failed, " << n_other
        << " interrupted or not started";
    if (n_locked) txt << ", " << n_locked << " locked by another run";
    txt << "\n";
    if (n_poor > 0)
      txt << "# POOR FITS: " << n_poor << " animal(s) do not beat their best baseline held out; their currents are "
             "not evidence\n";
    codes[0] = n_failed > 0;
    codes[1] = n_other > 0;  // a SIGTERM that came after the last run changes nothing
    codes[2] = n_locked > 0;
    try {
      book::write_text_atomic(fits_dir + "/summary" + tag + ".txt", txt.str());
      book::write_text_atomic(fits_dir + "/summary" + tag + ".csv", csv.str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cohortnet fit: error: %s\n", e.what());
      codes[0] = 1;
    }
    std::fputs(txt.str().c_str(), stdout);
    std::fflush(stdout);
  }
  MPI_Allreduce(MPI_IN_PLACE, codes, 3, MPI_INT, MPI_MAX, world);
  MPI_Comm_free(&group);
  if (codes[1]) {
    log::info(world, "fit interrupted by SIGTERM: checkpoints in ", ckpt_dir, "; rerun with --resume (exit code ",
              kExitInterrupted, ")");
    return kExitInterrupted;
  }
  if (codes[0]) return kExitAnimalsFailed;
  if (codes[2]) {
    log::info(world, "fit: some outputs are being written by another run (locked); exit code ", book::kExitLocked);
    return book::kExitLocked;
  }
  return kExitOk;
}

}  // namespace cohortnet::fit
