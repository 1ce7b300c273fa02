#include "core/options.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <petscsys.h>

#include "core/error.hpp"
#include "core/log.hpp"

namespace cohortnet {

namespace {
std::set<std::string>& known_sections() {
  static std::set<std::string> s;
  return s;
}

void common_options(po::options_description& d) {
  d.add_options()("help,h", "show this help")("config", po::value<std::string>(),
                                                   "INI config file; options go in a [section] per stage")(
      "verbose-ranks", po::bool_switch(), "log from every rank, not only rank 0");
}

template <class T>
bool put_scalar(std::ostream& os, const boost::any& v) {
  if (auto p = boost::any_cast<T>(&v)) {
    os << *p;
    return true;
  }
  return false;
}

template <class T>
bool put_list(std::ostream& os, const boost::any& v) {
  if (auto p = boost::any_cast<std::vector<T>>(&v)) {
    for (size_t i = 0; i < p->size(); ++i) os << (i ? "," : "") << (*p)[i];
    return true;
  }
  return false;
}

std::string value_text(const boost::any& v) {
  std::ostringstream os;
  os.precision(17);
  if (auto b = boost::any_cast<bool>(&v)) return *b ? "true" : "false";
  bool ok = put_scalar<std::string>(os, v) || put_scalar<int>(os, v) || put_scalar<long>(os, v) ||
            put_scalar<long long>(os, v) || put_scalar<unsigned>(os, v) || put_scalar<unsigned long>(os, v) ||
            put_scalar<unsigned long long>(os, v) || put_scalar<double>(os, v) || put_list<std::string>(os, v) ||
            put_list<int>(os, v) || put_list<long>(os, v) || put_list<double>(os, v);
  if (!ok) os << "?";
  return os.str();
}
}  // namespace

void register_config_section(const std::string& name) { known_sections().insert(name); }

std::string command_help(const Command& cmd) {
  po::options_description d(cat("cohortnet ", cmd.name, ": ", cmd.summary, "\n\nOptions"), 100);
  cmd.add_options(d);
  po::options_description c("Common options", 100);
  common_options(c);
  std::ostringstream os;
  os << d << "\n" << c
     << "\nPETSc options (single dash, e.g. -log_view) are passed to PETSc.\n"
        "Config files: INI with a [" << cmd.name << "] section; the command line wins.\n";
  return os.str();
}

bool parse_command(const Command& cmd, const std::vector<std::string>& args, po::variables_map& vm,
                   MPI_Comm comm) {
  po::options_description all;
  po::options_description own;
  cmd.add_options(own);
  common_options(all);
  all.add(own);

  // Split off PETSc's options: "-name" (single dash) and its value if one follows.
  std::vector<std::string> ours;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 1 && a[0] == '-' && a[1] != '-' && a != "-h") {
      if (i + 1 < args.size() && (args[i + 1].empty() || args[i + 1][0] != '-')) ++i;
      continue;
    }
    if (a.size() > 2 && a[0] == '-' && a[1] == '-') {
      std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
      const auto* desc = all.find_nothrow(name, false);
      if (!desc)
        fail("unknown option --", name, " for 'cohortnet ", cmd.name, "' (see cohortnet ", cmd.name, " --help)");
      // "--name value": the value is the next argument (even a negative number such as -3).
      if (a.find('=') == std::string::npos && desc->semantic()->max_tokens() > 0 && i + 1 < args.size() &&
          args[i + 1].rfind("--", 0) != 0) {
        ours.push_back(a);
        ours.push_back(args[++i]);
        continue;
      }
    } else if (a != "-h") {
      fail("unexpected argument '", a, "' for 'cohortnet ", cmd.name, "' (options start with --)");
    }
    ours.push_back(a);
  }

  try {
    po::store(po::command_line_parser(ours).options(all).run(), vm);
    if (vm.count("help")) {
      log::info(comm, command_help(cmd));
      return false;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) fail("config file ", path, ": cannot be read");
      auto parsed = po::parse_config_file(in, po::options_description(), true);
      // Keep this command's section; check that other sections are known stages.
      std::vector<std::string> mine_args;
      for (auto& opt : parsed.options) {
        const std::string& key = opt.string_key;
        auto dot = key.find('.');
        if (dot == std::string::npos)
          fail("config file ", path, ": key '", key, "' is outside a [section]; put it under [", cmd.name, "]");
        std::string section = key.substr(0, dot), name = key.substr(dot + 1);
        if (section != cmd.name) {
          if (!known_sections().count(section))
            fail("config file ", path, ": unknown section [", section, "]");
          continue;
        }
        if (!own.find_nothrow(name, false))
          fail("config file ", path, ": unknown key '", name, "' in [", section, "]");
        const auto* desc = own.find_nothrow(name, false);
        for (auto& v : opt.value) {
          if (desc->semantic()->max_tokens() == 0) {  // a switch: "flag = true" turns it on
            if (v == "true" || v == "1" || v == "yes" || v == "on") mine_args.push_back("--" + name);
            else if (!(v == "false" || v == "0" || v == "no" || v == "off"))
              fail("config file ", path, ": key '", name, "' in [", section, "] must be true or false");
          } else {
            mine_args.push_back("--" + name + "=" + v);
          }
        }
      }
      po::store(po::command_line_parser(mine_args).options(own).run(), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail("cohortnet ", cmd.name, ": ", e.what());
  }
  log::set_all_ranks(vm.count("verbose-ranks") && vm["verbose-ranks"].as<bool>());
  return true;
}

void check_petsc_options(const Command& cmd, const std::vector<std::string>& args) {
  std::set<std::string> single;
  for (const std::string& a : args)
    if (a.size() > 1 && a[0] == '-' && a[1] != '-') single.insert(a.substr(1));
  // Read by PETSc at PetscFinalize or on demand, so not yet "used" at start-up: let them through.
  static const char* const later[] = {"log", "malloc", "memory", "options", "objects", "info", "on_error",
                                      "no_signal_handler", "fp_trap", "checkstack", "viewer", "mpi", "help",
                                      "debugger", "start_in_debugger", "stop_for_debugger", "citations",
                                      // objects created later with a prefix: the gated start's TAO
                                      // (src/fit/gains.cpp), e.g. -gains_tao_max_it, -gains_tao_monitor
                                      "gains_"};
  PetscInt n = 0;
  char **names = nullptr, **values = nullptr;
  if (PetscOptionsLeftGet(nullptr, &n, &names, &values)) return;
  std::string bad;
  for (PetscInt i = 0; i < n && bad.empty(); ++i) {
    std::string name = names[i];
    if (!name.empty() && name[0] == '-') name.erase(0, 1);
    bool known = false;
    for (const char* p : later) known |= name.rfind(p, 0) == 0;
    if (!known && single.count(name)) bad = name;
  }
  PetscOptionsLeftRestore(nullptr, &n, &names, &values);
  if (bad.empty()) return;
  po::options_description own;
  cmd.add_options(own);
  std::string guess = bad;
  for (char& c : guess)
    if (c == '_') c = '-';
  const bool ours = own.find_nothrow(guess, false) != nullptr;
  fail("unknown option -", bad, ours ? cat(" (did you mean --", guess, "?)") : std::string(), " for 'cohortnet ",
       cmd.name, "': not a cohortnet option (those start with --) nor one PETSc uses");
}

std::string config_record(const std::string& section, const po::variables_map& vm) {
  std::ostringstream os;
  os << "[" << section << "]\n";
  for (auto& [key, val] : vm) {
    if (key == "help" || key == "config" || key == "verbose-ranks") continue;
    os << key << " = " << value_text(val.value()) << "\n";
  }
  return os.str();
}

}  // namespace cohortnet
