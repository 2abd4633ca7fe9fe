#pragma once
// rewrite: regex search-and-replace (Boost.Regex, Perl syntax, replacement with $1, $& ...), per
// direction, with an optional max_matches per channel and direction. Options: one rule at the
// top level (`pattern`, `replacement`, `direction`, `max_matches`) or a `rules` array of such
// objects, applied in order (each rule sees the output of the ones before it); `window` and
// `hold_timeout` for byte streams. See rule.hpp for the matching contract.
//
// After a layer such as `frame` (ctx.messages()), every chunk is one whole message and is
// rewritten at once, an empty message included; nothing is held. On a byte stream a match may
// span chunks: each rule holds back at most `window` bytes (default 4 KiB) that could still start
// or extend a match; they go out with the next chunk, before the half-close, or after
// `hold_timeout` (default 100ms, 0 = never) without a next chunk, searched for whole matches
// with what arrived by then.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_rewrite(sluice::Registry& registry);

}  // namespace sluice::builtin
