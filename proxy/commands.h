// The subcommands of the egressd binary; main.cpp dispatches to them. Each returns the exit status:
// 0 success, 1 failure, 2 a usage error.
#pragma once

#include <string_view>
#include <vector>

namespace egressd::proxy {

using Args = std::vector<std::string_view>;

int command_run(const Args& args);    // command_run.cpp: the proxy
int command_check(const Args& args);  // command_check.cpp: validate policy files
int command_ca(const Args& args);     // command_ca.cpp: create a CA for TLS termination

}  // namespace egressd::proxy
