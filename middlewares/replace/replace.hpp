#pragma once
// replace: rewrites every non-overlapping occurrence of `from` (required, non-empty) into `to`
// (required, may be empty), left to right, in `direction` ("upstream", "downstream" or "both",
// the default), including occurrences split across chunks. To see those it holds back, per
// direction, at most len(from)-1 bytes: the longest tail of the stream that could still begin a
// match. They go out with the next chunk, at the half-close if the stream ends inside them, or
// after `hold_timeout` (default 100ms, 0 = never) with no next chunk, so a request/response
// protocol whose message ends in a prefix of `from` is delayed, never stalled.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_replace(sluice::Registry& registry);

}  // namespace sluice::builtin
