#include "core/bookkeeping.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"

namespace cohortnet::book {

namespace fs = std::filesystem;

namespace {

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += char(c);
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c == '\r') o += "\\r";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += char(c);
  }
  return o + "\"";
}

// A flat JSON object of strings, numbers and null (what write_status writes).
std::map<std::string, std::string> parse_flat_json(const std::string& text, const std::string& path) {
  std::map<std::string, std::string> kv;
  size_t i = 0;
  auto bad = [&](const char* what) { fail("status file ", path, ": ", what, " at character ", i); };
  auto ws = [&] { while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i; };
  auto str = [&] {
    if (i >= text.size() || text[i] != '"') bad("expected a string");
    std::string o;
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] != '\\') { o += text[i]; continue; }
      if (++i >= text.size()) bad("unfinished escape");
      const char e = text[i];
      if (e == 'n') o += '\n';
      else if (e == 't') o += '\t';
      else if (e == 'r') o += '\r';
      else if (e == 'u' && i + 4 < text.size()) {
        o += char(std::stoi(text.substr(i + 1, 4), nullptr, 16));
        i += 4;
      } else o += e;
    }
    if (i >= text.size()) bad("unfinished string");
    ++i;
    return o;
  };
  ws();
  if (i >= text.size() || text[i] != '{') bad("expected '{'");
  ++i;
  for (;;) {
    ws();
    if (i < text.size() && text[i] == '}') break;
    const std::string key = str();
    ws();
    if (i >= text.size() || text[i] != ':') bad("expected ':'");
    ++i;
    ws();
    if (i < text.size() && text[i] == '"') kv[key] = str();
    else {
      const size_t b = i;
      while (i < text.size() && text[i] != ',' && text[i] != '}' && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      kv[key] = text.substr(b, i - b);
    }
    ws();
    if (i < text.size() && text[i] == ',') { ++i; continue; }
    if (i < text.size() && text[i] == '}') break;
    bad("expected ',' or '}'");
  }
  return kv;
}

std::string utc_now() {
  char b[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

std::string host_name() {
  char h[256] = {0};
  gethostname(h, sizeof h - 1);
  return h;
}

}  // namespace

void write_text_atomic(const std::string& path, const std::string& text) {
  // The temporary is this process's own: two writers never share one.
  const std::string tmp = path + ".partial." + std::to_string(getpid());
  {
    std::ofstream out(tmp);
    out << text;
    out.close();
    if (!out) fail("file ", path, ": cannot be written (", tmp, ")");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("file ", path, ": cannot be renamed into place: ", ec.message());
}

std::string status_path(const std::string& fits_dir, const std::string& animal_id) {
  return (fs::path(fits_dir) / (animal_id + ".status.json")).string();
}

void write_status(const std::string& fits_dir, const AnimalStatus& s) {
  std::ostringstream os;
  os.precision(17);
  os << "{\n  \"animal_id\": " << json_string(s.animal_id) << ",\n  \"status\": " << json_string(s.status)
     << ",\n  \"reason\": " << json_string(s.reason) << ",\n  \"fingerprint\": " << json_string(s.fingerprint)
     << ",\n  \"output\": " << json_string(s.output) << ",\n  \"source\": " << json_string(s.source)
     << ",\n  \"cohort\": " << json_string(s.cohort) << ",\n  \"final_pvar\": ";
  if (std::isfinite(s.final_pvar)) os << s.final_pvar;
  else os << "null";
  os << ",\n  \"written\": " << json_string(s.written.empty() ? utc_now() : s.written) << "\n}\n";
  write_text_atomic(status_path(fits_dir, s.animal_id), os.str());
}

std::optional<AnimalStatus> read_status(const std::string& fits_dir, const std::string& animal_id) {
  const std::string path = status_path(fits_dir, animal_id);
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) fail("status file ", path, ": cannot be read");
  auto kv = parse_flat_json(ss.str(), path);
  AnimalStatus s;
  s.animal_id = kv["animal_id"];
  s.status = kv["status"];
  s.reason = kv["reason"];
  s.fingerprint = kv["fingerprint"];
  s.output = kv["output"];
  s.source = kv["source"];
  s.cohort = kv["cohort"];
  s.written = kv["written"];
  s.final_pvar = kv["final_pvar"].empty() || kv["final_pvar"] == "null" ? NAN : std::strtod(kv["final_pvar"].c_str(), nullptr);
  if (s.animal_id != animal_id)
    fail("status file ", path, ": animal_id is '", s.animal_id, "', expected '", animal_id, "'");
  if (s.status != "ok" && s.status != "failed" && s.status != "interrupted" && s.status != "poor")
    fail("status file ", path, ": status '", s.status, "' is none of ok, failed, interrupted, poor");
  return s;
}

std::vector<AnimalStatus> read_statuses(const std::string& fits_dir) {
  std::vector<std::string> ids;
  const std::string suffix = ".status.json";
  std::error_code ec;
  for (auto& e : fs::directory_iterator(fits_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      ids.push_back(n.substr(0, n.size() - suffix.size()));
  }
  std::sort(ids.begin(), ids.end());
  std::vector<AnimalStatus> out;
  for (auto& id : ids) out.push_back(*read_status(fits_dir, id));
  return out;
}

std::string config_part(const std::string& fingerprint) {
  std::string out;
  for (const std::string& item : split_list(fingerprint, ';')) {
    const std::string key = item.substr(0, item.find('='));
    if (key == "N" || key == "T" || key == "dt_data" || key == "animal_index" || key == "inputs") continue;
    out += (out.empty() ? "" : ";") + item;
  }
  return out;
}

OutputLock::~OutputLock() { release(); }

void OutputLock::release() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove(path_, ec);
  path_.clear();
}

std::string OutputLock::take(const std::string& output) {
  release();
  const std::string path = output + ".lock";
  const std::string me = std::to_string(getpid()) + " " + host_name();
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      const std::string line = me + "\n";
      const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
      ::close(fd);
      if (!ok) return cat("lock file ", path, ": cannot be written");
      path_ = path;
      return "";
    }
    if (errno != EEXIST) return cat("lock file ", path, ": cannot be created: ", std::strerror(errno));
    std::ifstream in(path);
    long pid = 0;
    std::string host;
    in >> pid >> host;
    // A lock of a dead process on this host is stale: take it over. Others are respected.
    const bool dead_here = host == host_name() && pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
    if (!dead_here || attempt > 0)
      return cat("output ", output, " is locked by process ", pid, " on ", host.empty() ? "an unknown host" : host,
                 " (lock file ", path, "); another run is writing it. Wait for it, or remove the lock file if that "
                 "process is gone");
    std::fprintf(stderr, "cohortnet: warning: lock file %s was left by process %ld on %s, which is gone; taking it over\n",
                 path.c_str(), pid, host.c_str());
    std::error_code ec;
    fs::remove(path, ec);
  }
  return cat("lock file ", path, ": cannot be taken");
}

std::string check_writable(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return cat("option --out: cannot create folder ", dir, ": ", ec.message());
  const std::string probe = (fs::path(dir) / (".cohortnet-write-test." + std::to_string(getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return cat("option --out: folder ", dir, " is not writable: ", std::strerror(errno));
  ::close(fd);
  fs::remove(probe, ec);
  return "";
}

}  // namespace cohortnet::book
