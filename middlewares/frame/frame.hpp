#pragma once
// frame: a layer that turns each direction's byte stream into messages for every middleware after
// it (each on_data is one whole message; ctx.messages() is true there) and encodes them again
// where the bytes leave the chain: towards the upstream after the last middleware, towards the
// client at frame's own place. Formats:
// - "length" (the default): a `length_bytes` (1, 2, 4 or 8; default 4) length field in
//   `byte_order` ("big", the default, or "little") before each payload, counting only the payload
//   unless `length_includes_header` is true (socktools' and tcpy's framing is the default);
// - "line": messages end with `delimiter` ("\n", the default, or "\r\n"), which is not part of
//   the message.
// A frame whose payload is over `max_frame` (default 16 MiB) closes the channel with a reason that
// says so, as does a stream that ends inside a frame: the partial frame is reported, never passed
// on as if it were a message.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_frame(sluice::Registry& registry);

}  // namespace sluice::builtin
