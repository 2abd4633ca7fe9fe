#pragma once
// hexdump: logs every chunk at info level as a header line ("upstream offset 0 length 20", the
// offset being that of the chunk's first byte in its direction of the stream) followed by
// `hexdump -C` style lines whose offset column is also the stream offset. Option `max_bytes`
// (size, default 4096) caps how much of each chunk is dumped; 0 logs the header lines only.
// After a layer such as `frame` it dumps whole messages instead: "upstream message 3 length 20",
// with offsets counted from the message's first byte.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_hexdump(sluice::Registry& registry);

}  // namespace sluice::builtin
