// The subcommands of the egressd binary; main.cpp dispatches to them. Each returns the exit status:
// 0 success, 1 failure, 2 a usage error.
#pragma once

#include <string_view>
#include <vector>

namespace egressd::proxy {

using Args = std::vector<std::string_view>;

int command_run(const Args& args);      // command_run.cpp: the proxy
int command_check(const Args& args);    // command_check.cpp: validate policy files
int command_ca(const Args& args);       // command_ca.cpp: create a CA for TLS termination
int command_explain(const Args& args);  // command_explain.cpp: why the policy allows or denies one request
int command_suggest(const Args& args);  // command_suggest.cpp: deny-log lines -> the policy YAML to add

}  // namespace egressd::proxy
