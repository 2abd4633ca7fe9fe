#pragma once
// Logging: spdlog (Debian's libspdlog-dev), to stderr, leveled and timestamped. Engine code calls
// spdlog directly; plugin lines arrive through Context::log/Services::log and are mapped here.
#include <spdlog/spdlog.h>
#include <optional>
#include <string_view>

#include "sluice/log.hpp"

namespace sluice {

void init_logging(spdlog::level::level_enum level);
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);
spdlog::level::level_enum to_spdlog(Level level);

}  // namespace sluice
