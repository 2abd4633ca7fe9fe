#include "record/format/recording.hpp"

#include <openssl/evp.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace sluice::recording {
namespace {

using Json = nlohmann::ordered_json;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

const Json& field(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) throw FormatError(std::string("missing \"") + key + "\"");
  return *it;
}
std::string text_field(const Json& j, const char* key) {
  const Json& v = field(j, key);
  if (!v.is_string()) throw FormatError(std::string("\"") + key + "\" is not a string");
  return v.get<std::string>();
}
std::uint64_t count_field(const Json& j, const char* key) {
  const Json& v = field(j, key);
  if (!v.is_number_unsigned())
    throw FormatError(std::string("\"") + key + "\" is not a non-negative integer");
  return v.get<std::uint64_t>();
}
bool bool_field(const Json& j, const char* key) {
  const Json& v = field(j, key);
  if (!v.is_boolean()) throw FormatError(std::string("\"") + key + "\" is not a boolean");
  return v.get<bool>();
}
Direction direction_field(const Json& j) {
  const std::string d = text_field(j, "direction");
  if (d == to_string(Direction::upstream)) return Direction::upstream;
  if (d == to_string(Direction::downstream)) return Direction::downstream;
  throw FormatError("\"direction\" is \"" + d + "\", expected \"upstream\" or \"downstream\"");
}

// The channel at the start of a line that does not parse (cut short, say), as encode() writes it.
std::optional<std::uint64_t> leading_channel(std::string_view text) {
  constexpr std::string_view prefix = R"({"channel":)";
  if (!text.starts_with(prefix)) return std::nullopt;
  text.remove_prefix(prefix.size());
  std::uint64_t channel = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), channel);
  // Only a number that ended: a line cut inside it would give another channel.
  if (ec != std::errc() || end == text.data() + text.size() || *end != ',') return std::nullopt;
  return channel;
}

// The rest of the line, once its channel is known.
void decode_event(const Json& j, Line& line) {
  const Json& t = field(j, "t");
  if (!t.is_number() || !(t.get<double>() >= 0))
    throw FormatError("\"t\" is not a non-negative number");
  line.t = t.get<double>();
  const std::string event = text_field(j, "event");
  if (event == "open") {
    line.event = Open{text_field(j, "time"), text_field(j, "listener"), text_field(j, "client"),
                      text_field(j, "upstream"), bool_field(j, "messages")};
  } else if (event == "connected") {
    line.event = Connected{text_field(j, "upstream")};
  } else if (event == "data") {
    const Direction d = direction_field(j);
    auto bytes = base64_decode(text_field(j, "data"));
    if (!bytes) throw FormatError("\"data\" is not valid base64");
    line.event = Data{d, std::move(*bytes)};
  } else if (event == "end") {
    line.event = End{direction_field(j)};
  } else if (event == "truncated") {
    line.event = Truncated{};
  } else if (event == "close") {
    line.event = Close{text_field(j, "time"),
                       text_field(j, "reason"),
                       bool_field(j, "upstream_connected"),
                       count_field(j, "bytes_from_client"),
                       count_field(j, "bytes_to_upstream"),
                       count_field(j, "bytes_from_upstream"),
                       count_field(j, "bytes_to_client")};
  } else {
    throw FormatError("unknown event \"" + event + "\"");
  }
}

}  // namespace

std::string encode(const Line& line) {
  Json j = {{"channel", line.channel}, {"t", line.t}};
  std::visit(Overloaded{[&](const Open& e) {
                          j["event"] = "open";
                          j["time"] = e.time;
                          j["listener"] = e.listener;
                          j["client"] = e.client;
                          j["upstream"] = e.upstream;
                          j["messages"] = e.messages;
                        },
                        [&](const Connected& e) {
                          j["event"] = "connected";
                          j["upstream"] = e.upstream;
                        },
                        [&](const Data& e) {
                          j["event"] = "data";
                          j["direction"] = to_string(e.direction);
                          j["data"] = base64_encode(e.bytes);
                        },
                        [&](const End& e) {
                          j["event"] = "end";
                          j["direction"] = to_string(e.direction);
                        },
                        [&](const Truncated&) { j["event"] = "truncated"; },
                        [&](const Close& e) {
                          j["event"] = "close";
                          j["time"] = e.time;
                          j["reason"] = e.reason;
                          j["upstream_connected"] = e.upstream_connected;
                          j["bytes_from_client"] = e.bytes_from_client;
                          j["bytes_to_upstream"] = e.bytes_to_upstream;
                          j["bytes_from_upstream"] = e.bytes_from_upstream;
                          j["bytes_to_client"] = e.bytes_to_client;
                        }},
             line.event);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + '\n';
}

Line decode(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    FormatError error(std::string("not JSON: ") + e.what());
    error.channel = leading_channel(text);
    throw error;
  }
  if (!j.is_object()) throw FormatError("not a JSON object");
  Line line;
  line.channel = count_field(j, "channel");
  try {
    decode_event(j, line);
  } catch (FormatError& e) {
    e.channel = line.channel;
    throw;
  }
  return line;
}

void read_lines(std::istream& in, const std::function<bool(Line&&, std::size_t)>& each,
                const std::function<void(const FormatError&)>& bad) {
  std::size_t number = 0;
  for (std::string text; std::getline(in, text);) {
    ++number;
    if (text.empty()) continue;
    Line line;
    try {
      line = decode(text);
    } catch (const FormatError& e) {
      FormatError numbered("line " + std::to_string(number) + ": " + e.what());
      numbered.channel = e.channel;
      if (!bad) throw numbered;
      bad(numbered);
      continue;
    }
    if (!each(std::move(line), number)) return;
  }
  if (in.bad()) throw FormatError("read error after line " + std::to_string(number));
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  // EVP_EncodeBlock takes an int length: encode in pieces a multiple of 3 bytes long.
  constexpr std::size_t piece = 3 * (1 << 20);
  std::size_t at = 0;
  for (std::size_t i = 0; i < bytes.size(); i += piece) {
    const std::size_t n = std::min(piece, bytes.size() - i);
    at += static_cast<std::size_t>(EVP_EncodeBlock(
        reinterpret_cast<unsigned char*>(out.data() + at),
        reinterpret_cast<const unsigned char*>(bytes.data() + i), static_cast<int>(n)));
  }
  out.resize(at);  // drops the terminating NUL that EVP_EncodeBlock writes
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  // EVP_DecodeBlock trims surrounding whitespace, accepts '=' anywhere and decodes padding as
  // zero bytes: only canonical padding is let through, and the padding bytes are cut off.
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  if (text.substr(0, text.size() - pad).find_first_of("= \t\r\n\v\f") != std::string_view::npos)
    return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  constexpr std::size_t piece = 4 * (1 << 20);
  std::size_t at = 0;
  for (std::size_t i = 0; i < text.size(); i += piece) {
    const std::size_t n = std::min(piece, text.size() - i);
    const int got = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data() + at),
                                    reinterpret_cast<const unsigned char*>(text.data() + i),
                                    static_cast<int>(n));
    if (got < 0) return std::nullopt;
    at += static_cast<std::size_t>(got);
  }
  out.resize(at - pad);
  return out;
}

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), int(time.hours().count()),
                int(time.minutes().count()), int(time.seconds().count()),
                int(time.subseconds().count()));
  return buf;
}

double seconds(std::chrono::nanoseconds d) {
  return std::round(static_cast<double>(d.count()) / 1e3) / 1e6;
}

}  // namespace sluice::recording
