#pragma once
// sluice replay: plays the client side of one channel of a `record` file against an upstream and
// compares the upstream's answer with the downstream bytes of the recording.
//
// The recorded client bytes are sent in their chunks, and the client's half-close as recorded.
// Timing `fast` sends without pauses but keeps the request/response order: before each client
// chunk it waits (up to `timeout` without progress) until the upstream has sent as many bytes as
// had been recorded downstream before that chunk. Timing `original` sends each chunk at its
// recorded time after the connect. Then it reads the upstream's answer until the upstream closes
// or, if the recorded upstream never closed, until the recorded byte count is reached and nothing
// more comes for a moment (200 ms, or `timeout` if shorter); every wait is bounded by `timeout`.
//
// The report (on `out`): "match: ..." with the byte counts, or "differs: ..." with the first
// differing offset and the bytes around it, recorded against received, in hex and ASCII.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

namespace sluice {

struct ReplayOptions {
  enum class Timing { original, fast };
  std::filesystem::path file;
  std::string upstream;                  // HOST:PORT, as in a config's upstream
  std::optional<std::uint64_t> channel;  // default: the first channel of the file
  Timing timing = Timing::fast;
  std::chrono::milliseconds timeout{std::chrono::seconds(5)};
};

// Exit status: 0 the answer matches; 1 it differs (including an upstream that closed early, took
// no more bytes, or could not be connected); 2 the file is unreadable or has a bad line (named by
// its number), the channel is not in it (the error lists those that are), or the upstream
// address is malformed. Errors go to `err`, prefixed "sluice replay: ".
int replay(const ReplayOptions& options, std::ostream& out, std::ostream& err);

}  // namespace sluice
