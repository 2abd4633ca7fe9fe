#pragma once
// The recording format: what the `record` middleware writes and `sluice replay` reads, defined
// here once so that writer and reader cannot drift.
//
// A recording is a text file of JSON lines, one event each. Every line has "channel" (the
// channel id), "t" (seconds since the channel opened, microsecond resolution) and "event":
//   open       "time" (wall clock, UTC ISO 8601 with milliseconds), "listener", "client",
//              "upstream" (as configured, "" if none yet), "messages" (true when record sits
//              after a framing layer: each data event is then one message, not stream bytes)
//   connected  "upstream": the address actually connected to
//   data       "direction" ("upstream": client to server, "downstream": back), "data" (base64)
//   end        "direction": that side half-closed
//   truncated  the channel's max_bytes was reached: no data events follow
//   close      "time", "reason", "upstream_connected", "bytes_from_client", "bytes_to_upstream",
//              "bytes_from_upstream", "bytes_to_client" (the engine's counts at close)
// Lines of several channels may interleave in one file; each line is written whole.
//
// Base64 is OpenSSL's (EVP_EncodeBlock/EVP_DecodeBlock), with the padding and alphabet checks
// that EVP_DecodeBlock leaves to its caller.
#include <chrono>
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include "sluice/context.hpp"

namespace sluice::recording {

struct Open {
  std::string time, listener, client, upstream;
  bool messages = false;
};
struct Connected {
  std::string upstream;
};
struct Data {
  Direction direction = Direction::upstream;
  std::string bytes;  // decoded
};
struct End {
  Direction direction = Direction::upstream;
};
struct Truncated {};
struct Close {
  std::string time, reason;
  bool upstream_connected = false;
  std::uint64_t bytes_from_client = 0, bytes_to_upstream = 0, bytes_from_upstream = 0,
                bytes_to_client = 0;
};
using Event = std::variant<Open, Connected, Data, End, Truncated, Close>;

struct Line {
  std::uint64_t channel = 0;
  double t = 0;  // seconds since the channel opened
  Event event;
};

// A line that is not a valid event; what() says why (without the line number).
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
  // The line's channel, when that much of it could be read (also from a line cut short: encode()
  // writes "channel" first), so that a reader can tell whose line is bad.
  std::optional<std::uint64_t> channel;
};

// One line of text, ending in '\n'. Non-UTF-8 bytes in text fields (a reason quoting peer bytes)
// become U+FFFD rather than failing: the line must always be writable.
std::string encode(const Line& line);
// One line (with or without its '\n'); throws FormatError.
Line decode(std::string_view text);

// Calls `each(line, number)` for every line of `in` (numbered from 1; empty lines skipped) until it
// returns false. A bad line makes a FormatError "line N: why": given to `bad`, which throws it or
// returns to skip the line; without `bad`, thrown.
void read_lines(std::istream& in, const std::function<bool(Line&&, std::size_t)>& each,
                const std::function<void(const FormatError&)>& bad = {});

std::string base64_encode(std::string_view bytes);
// nullopt unless `text` is canonical base64 (length a multiple of 4, padding only at the end).
std::optional<std::string> base64_decode(std::string_view text);

// "2026-11-23T15:35:14.123Z".
std::string iso8601_utc(std::chrono::system_clock::time_point t);
// Seconds as written in "t": rounded to microseconds.
double seconds(std::chrono::nanoseconds d);

}  // namespace sluice::recording
