// The console log: operator-facing lines through spdlog, the only process-wide object egressd has.
// Decision logs (deny/access JSON lines) are a separate product interface and never go through here.
#pragma once

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace egressd::log {

using spdlog::critical;
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::trace;
using spdlog::warn;

// Sets the console level from a name (trace, debug, info, warn, error, off). Returns false if unknown.
inline bool set_level(std::string_view name) {
  const auto level = spdlog::level::from_str(std::string(name));
  if (level == spdlog::level::off && name != "off") return false;
  spdlog::set_level(level);
  return true;
}

// Console lines go to stderr, so that stdout stays free for command output (`egressd check`, ...).
inline void init_console() {
  auto logger = spdlog::stderr_color_mt("egressd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ %v");
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace egressd::log
