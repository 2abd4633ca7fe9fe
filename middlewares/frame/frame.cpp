#include "frame/frame.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::builtin {
namespace {

struct Format {
  bool line = false;
  std::size_t length_bytes = 4;
  bool big_endian = true;
  bool length_includes_header = false;
  std::string delimiter = "\n";
  std::uint64_t max_frame = 16 * 1024 * 1024;

  // The largest payload the length field can describe.
  std::uint64_t max_encodable() const {
    const std::uint64_t field_max =
        length_bytes == 8 ? UINT64_MAX : (std::uint64_t{1} << (8 * length_bytes)) - 1;
    return length_includes_header ? field_max - length_bytes : field_max;
  }
  std::uint64_t read_length(const char* p) const {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < length_bytes; ++i) {
      const auto b = static_cast<unsigned char>(p[big_endian ? i : length_bytes - 1 - i]);
      v = (v << 8) | b;
    }
    return v;
  }
  void write_length(char* p, std::uint64_t v) const {
    for (std::size_t i = 0; i < length_bytes; ++i) {
      p[big_endian ? length_bytes - 1 - i : i] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
  }
};

// A frame is buffered whole before it is passed on: beyond this, one peer could make sluice hold
// more memory than any real protocol needs (and the length arithmetic stays far from overflow).
constexpr std::uint64_t kMaxFrameLimit = std::uint64_t{1} << 30;

std::string_view sender(Direction dir) {
  return dir == Direction::upstream ? "the client" : "the upstream";
}

// One half of the layer. The client-side half (at frame's place in the chain) decodes upstream
// bytes and encodes downstream messages; its partner at the server edge does the reverse. Each
// half keeps the partial frame of the one direction it decodes.
class FrameSide final : public Middleware {
 public:
  FrameSide(const Format& format, bool client_side) : f_(format), client_side_(client_side) {}

  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    if ((dir == Direction::upstream) != client_side_) return encode(ctx, dir, chunk);
    if (decoding_) {
      // Re-entered: a message this half sent made a middleware inject bytes that came back
      // here. They follow what is being decoded; the outer call takes them in turn, so the
      // views into pending_ it is sending from stay valid.
      backlog_.append(chunk.view());
      return Verdict::drop;
    }
    decoding_ = true;
    decode(ctx, dir, chunk.view());
    while (!backlog_.empty() && !closed_) {
      const std::string more = std::exchange(backlog_, {});
      decode(ctx, dir, more);
    }
    decoding_ = false;
    return Verdict::drop;
  }

  void on_end(Context& ctx, Direction dir) override {
    if ((dir == Direction::upstream) != client_side_ || pending_.empty()) return;
    std::string what;
    if (f_.line) {
      what = std::to_string(pending_.size()) + " bytes of a line with no delimiter";
    } else if (pending_.size() < f_.length_bytes) {
      what = std::to_string(pending_.size()) + " of the " + std::to_string(f_.length_bytes) +
             " bytes of a length field";
    } else {
      what = std::to_string(pending_.size() - f_.length_bytes) + " of " +
             std::to_string(payload_length(f_.read_length(pending_.data()))) + " bytes of payload";
    }
    ctx.close("frame: " + std::string(sender(dir)) + " ended inside a frame (" + what + ")");
  }

 private:
  // Passes every whole message in `in` (after what is pending) on, one ctx.send each, and keeps
  // the rest. Whole messages are sent straight from the chunk; only a frame split across chunks
  // is copied into pending_.
  void decode(Context& ctx, Direction dir, std::string_view in) {
    std::string_view s = in;
    if (!pending_.empty()) {
      pending_.append(in);
      s = pending_;
    }
    std::size_t done = 0;
    while (!closed_) {
      const std::size_t used = f_.line ? next_line(ctx, dir, s.substr(done))
                                       : next_length_frame(ctx, dir, s.substr(done));
      if (used == 0) break;
      done += used;
    }
    if (closed_) return;
    if (pending_.empty()) {
      pending_.assign(s.substr(done));
    } else {
      pending_.erase(0, done);
    }
    scanned_ = std::min(scanned_, pending_.size());
  }

  // Sends the message at the start of `s` and returns the bytes it took, or 0 if `s` holds no
  // whole frame yet.
  std::size_t next_length_frame(Context& ctx, Direction dir, std::string_view s) {
    if (s.size() < f_.length_bytes) return 0;
    const std::uint64_t length = f_.read_length(s.data());
    if (f_.length_includes_header && length < f_.length_bytes) {
      fail(ctx, std::string(sender(dir)) + " sent a length of " + std::to_string(length) +
                    ", shorter than the " + std::to_string(f_.length_bytes) + "-byte header");
      return 0;
    }
    const std::uint64_t payload = payload_length(length);
    if (payload > f_.max_frame) {
      fail(ctx, std::string(sender(dir)) + " sent a frame of " + std::to_string(payload) +
                    " bytes, over max_frame (" + std::to_string(f_.max_frame) + ")");
      return 0;
    }
    if (s.size() - f_.length_bytes < payload) return 0;
    ctx.send(dir, s.substr(f_.length_bytes, payload));
    return f_.length_bytes + payload;
  }

  std::size_t next_line(Context& ctx, Direction dir, std::string_view s) {
    // A line arriving in many small chunks is scanned once: scanned_ remembers how far the
    // pending bytes were searched (minus a delimiter's length, which may straddle chunks).
    const std::size_t from =
        scanned_ >= f_.delimiter.size() ? scanned_ - f_.delimiter.size() + 1 : 0;
    scanned_ = 0;
    const std::size_t end = s.find(f_.delimiter, std::min(from, s.size()));
    if (end == std::string_view::npos) {
      if (s.size() > f_.max_frame + f_.delimiter.size() - 1) {
        fail(ctx, std::string(sender(dir)) + " sent a line longer than max_frame (" +
                      std::to_string(f_.max_frame) + ")");
        return 0;
      }
      scanned_ = s.size();
      return 0;
    }
    if (end > f_.max_frame) {
      fail(ctx, std::string(sender(dir)) + " sent a line of " + std::to_string(end) +
                    " bytes, over max_frame (" + std::to_string(f_.max_frame) + ")");
      return 0;
    }
    ctx.send(dir, s.substr(0, end));
    return end + f_.delimiter.size();
  }

  Verdict encode(Context& ctx, Direction dir, Chunk& message) {
    if (f_.line) {
      message.append(f_.delimiter);
      return Verdict::pass;
    }
    if (message.size() > f_.max_encodable()) {
      fail(ctx, "a " + std::string(to_string(dir)) + " message of " +
                    std::to_string(message.size()) + " bytes does not fit a " +
                    std::to_string(f_.length_bytes) + "-byte length");
      return Verdict::drop;
    }
    char header[8];
    f_.write_length(header, message.size() + (f_.length_includes_header ? f_.length_bytes : 0));
    message.splice(0, 0, {header, f_.length_bytes});
    return Verdict::pass;
  }

  std::uint64_t payload_length(std::uint64_t length) const {
    return f_.length_includes_header ? length - f_.length_bytes : length;
  }

  void fail(Context& ctx, const std::string& what) {
    closed_ = true;
    pending_.clear();
    ctx.close("frame: " + what);
  }

  const Format& f_;
  bool client_side_;
  bool closed_ = false;
  bool decoding_ = false;
  std::string backlog_;      // bytes that arrived while decoding_ (see on_data)
  std::string pending_;      // the start of a frame that has not fully arrived
  std::size_t scanned_ = 0;  // line mode: bytes of pending_ already searched for the delimiter
};

class FrameFactory final : public MiddlewareFactory {
 public:
  explicit FrameFactory(Format format) : f_(std::move(format)) {}
  std::unique_ptr<Middleware> create() override { return std::make_unique<FrameSide>(f_, true); }
  std::unique_ptr<Middleware> create_server_edge(Middleware&) override {
    return std::make_unique<FrameSide>(f_, false);
  }

 private:
  Format f_;
};

Format read_format(Options& options) {
  Format f;
  f.line = options.choice("format", {"length", "line"}, "length") == "line";
  f.max_frame = options.size("max_frame", f.max_frame);
  if (f.max_frame == 0 || f.max_frame > kMaxFrameLimit)
    options.fail("max_frame", "expected a size from 1 byte to 1GiB");
  const char* length_keys[] = {"length_bytes", "byte_order", "length_includes_header"};
  if (f.line) {
    for (const char* key : length_keys)
      if (options.has(key)) options.fail(key, "applies to \"format\": \"length\" only");
    f.delimiter = options.get<std::string>("delimiter", "\n");
    if (f.delimiter != "\n" && f.delimiter != "\r\n")
      options.fail("delimiter", R"(expected "\n" or "\r\n")");
    return f;
  }
  if (options.has("delimiter")) options.fail("delimiter", "applies to \"format\": \"line\" only");
  const auto bytes = options.get<std::uint64_t>("length_bytes", 4);
  if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8)
    options.fail("length_bytes", "expected 1, 2, 4 or 8, got " + std::to_string(bytes));
  f.length_bytes = bytes;
  f.big_endian = options.choice("byte_order", {"big", "little"}, "big") == "big";
  f.length_includes_header = options.get<bool>("length_includes_header", false);
  return f;
}

}  // namespace

void register_frame(Registry& registry) {
  registry.add_middleware(
      "frame",
      "turns the byte stream into length-prefixed or line-delimited messages for the "
      "middlewares after it, and encodes them again on the way out",
      [](Options& options, Services&) -> std::unique_ptr<MiddlewareFactory> {
        return std::make_unique<FrameFactory>(read_format(options));
      });
}

}  // namespace sluice::builtin
