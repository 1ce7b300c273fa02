#pragma once
// What passes between the stages of a study: per-animal status files (fit writes one for every
// animal it attempts; modes, report and submit read them), locks on outputs (one writer per file),
// and the comparison of parameter fingerprints ("key=value;..." lists, fit::fingerprint). Every
// error names the file. docs/fit.md ("Status files", "Locks") describes the formats.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace cohortnet::book {

// Exit code of a stage whose output another live process is writing (docs/fit.md, docs/modes.md).
inline constexpr int kExitLocked = 73;
// The stage finished and wrote its outputs, but a check against the simulator's ground truth
// failed (modes on a simulated cohort that do not recover its true modes): not a success.
inline constexpr int kExitTruthFailed = 3;

// OUT/fits/<animal>.status.json
struct AnimalStatus {
  std::string animal_id;
  std::string status;       // ok | failed | interrupted | poor
  std::string reason;       // empty when ok
  std::string fingerprint;  // the fit's parameter fingerprint (fit::fingerprint)
  std::string output;       // absolute path of the fit .h5
  std::string source;       // absolute path of the animal file
  std::string cohort;       // absolute path of the cohort folder
  double final_pvar = NAN;
  std::string written;      // UTC time of writing
};

std::string status_path(const std::string& fits_dir, const std::string& animal_id);
// Temporary name, then rename: a reader sees the old or the new file, never half of one.
void write_status(const std::string& fits_dir, const AnimalStatus& s);
// The status file of an animal; nullopt if there is none. Throws Error naming an unreadable file.
std::optional<AnimalStatus> read_status(const std::string& fits_dir, const std::string& animal_id);
// Every *.status.json in fits_dir, sorted by animal id.
std::vector<AnimalStatus> read_statuses(const std::string& fits_dir);

// Writes text to path through path.partial and a rename (throws Error naming the file).
void write_text_atomic(const std::string& path, const std::string& text);

// The options part of a fingerprint: without the keys that differ between animals of one
// configuration (N, T, dt_data, animal_index, inputs).
std::string config_part(const std::string& fingerprint);

// An exclusive lock on one output: OUTPUT.lock created with O_EXCL, holding "pid host". A lock
// left by a dead process on this host is taken over (with a warning); a live one, or one from
// another host, is not. Released (removed) by the destructor.
class OutputLock {
 public:
  OutputLock() = default;
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  ~OutputLock();
  // Takes the lock of `output`; returns "" on success, else why not (naming the lock file and
  // its holder).
  std::string take(const std::string& output);
  void release();
  bool held() const { return !path_.empty(); }

 private:
  std::string path_;
};

// "" if folder `dir` (created if missing) accepts a new file, else the reason (naming it).
std::string check_writable(const std::string& dir);

}  // namespace cohortnet::book
