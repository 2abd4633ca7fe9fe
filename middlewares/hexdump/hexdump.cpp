#include "hexdump/hexdump.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice::builtin {
namespace {

constexpr std::size_t kBytesPerLine = 16;
constexpr char kDigits[] = "0123456789abcdef";

void append_hex(std::string& out, std::uint64_t v, int min_digits) {
  char buf[16];
  int n = 0;
  do {
    buf[n++] = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0 || n < min_digits);
  while (n > 0) out += buf[--n];
}

// One `hexdump -C` line: offset, 16 bytes in two groups of 8, then |ascii|.
void append_line(std::string& out, std::uint64_t offset, std::string_view bytes) {
  out += '\n';
  append_hex(out, offset, 8);
  out += "  ";
  for (std::size_t i = 0; i < kBytesPerLine; ++i) {
    if (i < bytes.size()) {
      const auto b = static_cast<unsigned char>(bytes[i]);
      out += kDigits[b >> 4];
      out += kDigits[b & 0xf];
      out += ' ';
    } else {
      out += "   ";  // pads a short last line so its ascii column lines up
    }
    if (i == 7) out += ' ';
  }
  out += " |";
  for (char c : bytes) out += (c >= 0x20 && c < 0x7f) ? c : '.';
  out += '|';
}

class Hexdump final : public Middleware {
 public:
  explicit Hexdump(std::uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // On a byte stream every chunk is labelled with its stream offset; after a layer (`frame`)
  // every chunk is a message, numbered, and dumped from offset 0.
  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    std::uint64_t& offset = offset_[index(dir)];
    const std::uint64_t start = offset;
    offset += chunk.size();
    const bool message = ctx.messages();
    const std::uint64_t number = message ? ++messages_[index(dir)] : 0;
    if (ctx.log_enabled(Level::info))
      ctx.log(Level::info, message ? format(dir, "message", number, 0, chunk.view())
                                   : format(dir, "offset", start, start, chunk.view()));
    return Verdict::pass;
  }

  void on_end(Context& ctx, Direction dir) override {
    if (!ctx.log_enabled(Level::info)) return;
    const std::string where =
        ctx.messages() ? " end after " + std::to_string(messages_[index(dir)]) + " messages"
                       : " end at offset " + std::to_string(offset_[index(dir)]);
    ctx.log(Level::info, std::string(to_string(dir)) + where);
  }

 private:
  static std::size_t index(Direction d) { return d == Direction::upstream ? 0 : 1; }

  // One message per chunk, not one per line, so that dumps of channels on other workers never
  // interleave with it in the log.
  std::string_view format(Direction dir, std::string_view label, std::uint64_t label_value,
                          std::uint64_t offset, std::string_view bytes) const {
    // Reused by every channel of the worker thread (hooks never nest inside a log call), so a
    // warmed-up dump allocates nothing.
    thread_local std::string out;
    out.clear();
    out += to_string(dir);
    out += ' ';
    out += label;
    out += ' ';
    out += std::to_string(label_value);
    out += " length ";
    out += std::to_string(bytes.size());
    if (max_bytes_ == 0) return out;
    if (bytes.size() > max_bytes_) {
      out += " (";
      out += std::to_string(bytes.size() - max_bytes_);
      out += " bytes left out)";
      bytes = bytes.substr(0, max_bytes_);
    }
    for (std::size_t i = 0; i < bytes.size(); i += kBytesPerLine)
      append_line(out, offset + i, bytes.substr(i, kBytesPerLine));
    return out;
  }

  std::uint64_t max_bytes_;
  std::uint64_t offset_[2] = {0, 0};
  std::uint64_t messages_[2] = {0, 0};
};

class HexdumpFactory final : public MiddlewareFactory {
 public:
  explicit HexdumpFactory(std::uint64_t max_bytes) : max_bytes_(max_bytes) {}
  std::unique_ptr<Middleware> create() override { return std::make_unique<Hexdump>(max_bytes_); }

 private:
  std::uint64_t max_bytes_;
};

}  // namespace

void register_hexdump(Registry& registry) {
  registry.add_middleware(
      "hexdump",
      "logs every chunk (or message, after frame) as a hex and ASCII dump, with its direction "
      "and stream offset",
      [](Options& options, Services&) -> std::unique_ptr<MiddlewareFactory> {
        return std::make_unique<HexdumpFactory>(options.size("max_bytes", 4096));
      });
}

}  // namespace sluice::builtin
