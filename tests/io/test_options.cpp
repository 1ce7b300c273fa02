// Options and config files: command line over config, unknown options and keys named, PETSc's
// single-dash options let through, the resolved configuration recorded.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/text.hpp"
#include "core/options.hpp"
#include "test_util.hpp"

using namespace cohortnet;

namespace {

Command demo_command() {
  Command c;
  c.name = "demo";
  c.summary = "a command for tests";
  c.add_options = [](po::options_description& d) {
    d.add_options()("runs", po::value<int>()->default_value(20), "training runs")(
        "tau", po::value<double>()->default_value(0.01), "time constant")(
        "name", po::value<std::string>()->default_value("x"), "a name")("fast", po::bool_switch(), "a switch");
  };
  c.run = [](const po::variables_map&, MPI_Comm) { return 0; };
  return c;
}

std::string parse_error(const std::vector<std::string>& args) {
  po::variables_map vm;
  try {
    parse_command(demo_command(), args, vm, MPI_COMM_SELF);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string write_config(const std::string& dir, const std::string& text) {
  static int n = 0;  // a new file each time: a slower rank may still be reading the last one
  std::string path = dir + "/c" + std::to_string(n++) + ".ini";
  if (comm_rank(MPI_COMM_WORLD) == 0) std::ofstream(path) << text;
  MPI_Barrier(MPI_COMM_WORLD);
  return path;
}

}  // namespace

TEST(Options, DefaultsAndCommandLine) {
  po::variables_map vm;
  ASSERT_TRUE(parse_command(demo_command(), {"--runs", "5", "--fast"}, vm, MPI_COMM_SELF));
  EXPECT_EQ(vm["runs"].as<int>(), 5);
  EXPECT_DOUBLE_EQ(vm["tau"].as<double>(), 0.01);
  EXPECT_TRUE(vm["fast"].as<bool>());
}

TEST(Options, UnknownOptionIsNamed) {
  std::string e = parse_error({"--rusn", "5"});
  EXPECT_NE(e.find("--rusn"), std::string::npos) << e;
  EXPECT_NE(e.find("cohortnet demo"), std::string::npos) << e;
  e = parse_error({"--runs", "five"});
  EXPECT_NE(e.find("runs"), std::string::npos) << e;
  e = parse_error({"stray"});
  EXPECT_NE(e.find("stray"), std::string::npos) << e;
}

TEST(Options, PetscOptionsPassThrough) {
  po::variables_map vm;
  ASSERT_TRUE(parse_command(demo_command(), {"-log_view", "--runs", "3", "-mat_type", "dense"}, vm, MPI_COMM_SELF));
  EXPECT_EQ(vm["runs"].as<int>(), 3);
}

TEST(Options, ConfigSectionsAndOverride) {
  register_config_section("demo");
  register_config_section("other");
  std::string dir = testutil::scratch_dir("options");
  std::string cfg = write_config(dir, "[demo]\nruns = 7\ntau = 0.5\nfast = true\n[other]\nwhatever = 1\n");
  po::variables_map vm;
  ASSERT_TRUE(parse_command(demo_command(), {"--config", cfg, "--runs", "9"}, vm, MPI_COMM_SELF));
  EXPECT_EQ(vm["runs"].as<int>(), 9);  // command line wins
  EXPECT_DOUBLE_EQ(vm["tau"].as<double>(), 0.5);
  EXPECT_TRUE(vm["fast"].as<bool>());
  std::string rec = config_record("demo", vm);
  EXPECT_NE(rec.find("[demo]"), std::string::npos);
  EXPECT_NE(rec.find("runs = 9"), std::string::npos) << rec;
  EXPECT_NE(rec.find("tau = 0.5"), std::string::npos) << rec;

  cfg = write_config(dir, "[demo]\nrnus = 7\n");
  std::string e = parse_error({"--config", cfg});
  EXPECT_NE(e.find("rnus"), std::string::npos) << e;
  EXPECT_NE(e.find(cfg), std::string::npos) << e;
  cfg = write_config(dir, "[demoo]\nruns = 7\n");
  e = parse_error({"--config", cfg});
  EXPECT_NE(e.find("unknown section [demoo]"), std::string::npos) << e;
  e = parse_error({"--config", dir + "/missing.ini"});
  EXPECT_NE(e.find("missing.ini"), std::string::npos) << e;
}

TEST(Text, ListsAreTrimmedAndEmptyItemsDropped) {
  EXPECT_EQ(split_list(" a, b ,,c\t,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_list(" , ").empty());
  EXPECT_EQ(trim("\t x y \r\n"), "x y");
  EXPECT_EQ(trim("   "), "");
}
