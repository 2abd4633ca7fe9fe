#pragma once
// access-log: writes one JSON line per channel when it closes, to option `path` ("-", the
// default, for stderr; otherwise a file opened for appending when the config goes into service):
// "time" (channel open, UTC, ISO-8601 with milliseconds), "listener", "channel", "client",
// "upstream", "upstream_connected", "bytes_from_client", "bytes_to_upstream",
// "bytes_from_upstream", "bytes_to_client", "duration_ms" and "reason".
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_access_log(sluice::Registry& registry);

}  // namespace sluice::builtin
