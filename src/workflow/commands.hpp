#pragma once
// The list of subcommands. Each stage provides a `Command make_X_command()` in its own
// src/<stage>/command.hpp; add it to all_commands() in commands.cpp.
#include <vector>

#include "core/options.hpp"

namespace cohortnet {
std::vector<Command> all_commands();
}
