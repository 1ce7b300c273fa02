#pragma once
// Small text helpers shared by option parsing, manifests and configs.
#include <string>
#include <vector>

namespace cohortnet {

// s without leading and trailing blanks (space, tab, CR, LF).
std::string trim(const std::string& s);
// "a, b,,c " -> {"a", "b", "c"}: comma-separated items, trimmed, empty items dropped.
std::vector<std::string> split_list(const std::string& s, char sep = ',');

}  // namespace cohortnet
