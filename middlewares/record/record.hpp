#pragma once
// record: writes every channel, as it happens, as JSON lines in the format of
// record/format/recording.hpp (which `sluice replay` reads): open, connected, data (base64, per
// direction), end (half-close), close (reason and byte counts). Bytes pass unchanged.
//
// Options: `path` (required): a file that every channel of the listener appends to, opened when
// the config loads; or a folder (a path ending in "/", or an existing directory), created when
// the config loads if missing, with one file per channel named "<open time>-ch<id>.jsonl".
// `max_bytes` (size, default 0 = no limit): data bytes recorded per channel, both directions
// together; past it one "truncated" event, then no more data events.
//
// Every line goes to the file in one write(2) as it happens (no user-space buffer), so a
// channel's lines are all in the file once it closed. A write error stops recording that channel
// and is logged (at warn the first time for the listener's chain, at debug afterwards); the
// channel itself goes on.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_record(sluice::Registry& registry);

}  // namespace sluice::builtin
