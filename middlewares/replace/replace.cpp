#include "replace/replace.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::builtin {
namespace {

// What every channel of a listener shares, read-only.
class Pattern {
 public:
  Pattern(std::string from, std::string to, std::string_view direction, Clock::duration hold)
      : from_(std::move(from)),
        to_(std::move(to)),
        hold_(hold),
        border_(from_.size(), 0),
        upstream_(direction != "downstream"),
        downstream_(direction != "upstream") {
    // KMP failure function: border_[i] is the length of the longest proper prefix of
    // from_[0..i] that is also its suffix.
    for (std::size_t i = 1, k = 0; i < from_.size(); ++i) {
      while (k > 0 && from_[i] != from_[k]) k = border_[k - 1];
      if (from_[i] == from_[k]) ++k;
      border_[i] = k;
    }
  }

  std::string_view from() const { return from_; }
  std::string_view to() const { return to_; }
  Clock::duration hold_timeout() const { return hold_; }
  bool applies(Direction d) const { return d == Direction::upstream ? upstream_ : downstream_; }

  // Length of the longest suffix of `s` that is a proper prefix of `from`, for a stream in which
  // no occurrence of `from` ends inside `s`: the bytes that a later chunk could complete into a
  // match. Linear in len(from), whatever the size of `s`.
  std::size_t open_prefix(std::string_view s) const {
    if (s.size() >= from_.size()) s.remove_prefix(s.size() - (from_.size() - 1));
    std::size_t k = 0;
    for (char c : s) {  // k < len(from) holds: s is shorter than `from`
      while (k > 0 && from_[k] != c) k = border_[k - 1];
      if (from_[k] == c) ++k;
    }
    return k;
  }

 private:
  std::string from_;
  std::string to_;
  Clock::duration hold_;
  std::vector<std::size_t> border_;
  bool upstream_;
  bool downstream_;
};

class Replace final : public Middleware {
 public:
  explicit Replace(const Pattern& pattern) : p_(pattern) {}

  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    if (!p_.applies(dir)) return Verdict::pass;
    // After a layer each chunk is a whole message: no match spans two, so nothing is held back
    // (holding would glue a message's tail onto the next one).
    if (ctx.messages()) return replace_all(chunk);
    std::string& carry = held_[index(dir)].bytes;
    const std::string_view in = chunk.view();
    std::size_t match = std::string_view::npos;
    if (carry.empty()) {
      match = in.find(p_.from());
      if (match == std::string_view::npos) {
        // The common case: the chunk goes on as it is, short of a tail that may start a match.
        const std::size_t keep = p_.open_prefix(in);
        if (keep != 0) {
          carry.assign(in.substr(in.size() - keep));
          chunk.resize(in.size() - keep);
          arm(ctx, dir);
        }
        return Verdict::pass;
      }
    }
    // The bytes change: rebuild the chunk from a copy of carry + chunk. The copy is shared by the
    // worker's channels (nothing here can re-enter a hook) so it stops allocating once warm.
    thread_local std::string input;
    input.assign(carry);
    input.append(in);
    const std::string_view s = input;
    if (match == std::string_view::npos) match = s.find(p_.from());
    chunk.clear();
    std::size_t done = 0;
    for (; match != std::string_view::npos; match = s.find(p_.from(), done)) {
      chunk.append(s.substr(done, match - done));
      chunk.append(p_.to());
      done = match + p_.from().size();
    }
    const std::string_view tail = s.substr(done);
    const std::size_t keep = p_.open_prefix(tail);
    chunk.append(tail.substr(0, tail.size() - keep));
    carry.assign(tail.substr(tail.size() - keep));
    if (keep != 0) arm(ctx, dir);
    return Verdict::pass;
  }

  void on_end(Context& ctx, Direction dir) override { flush(ctx, dir); }

 private:
  Verdict replace_all(Chunk& message) {
    const std::string_view in = message.view();
    std::size_t match = in.find(p_.from());
    if (match == std::string_view::npos) return Verdict::pass;
    thread_local std::string out;
    out.clear();
    std::size_t done = 0;
    for (; match != std::string_view::npos; match = in.find(p_.from(), done)) {
      out.append(in.substr(done, match - done));
      out.append(p_.to());
      done = match + p_.from().size();
    }
    out.append(in.substr(done));
    message.assign(out);
    return Verdict::pass;
  }

  struct Held {
    std::string bytes;  // always shorter than `from`
    Clock::time_point since;
    bool timer = false;
  };
  static std::size_t index(Direction d) { return d == Direction::upstream ? 0 : 1; }

  // The held bytes were not a match after all: they go out unchanged.
  void flush(Context& ctx, Direction dir) {
    const std::string rest = std::exchange(held_[index(dir)].bytes, {});
    if (!rest.empty()) ctx.send(dir, rest);
  }

  // A request/response protocol may send nothing more until it gets an answer, so held bytes
  // must not wait for the next chunk forever: after hold_timeout without one, they go out.
  void arm(Context& ctx, Direction dir) {
    Held& h = held_[index(dir)];
    h.since = ctx.now();
    if (h.timer || p_.hold_timeout() == Clock::duration::zero()) return;
    h.timer = true;
    ctx.start_timer(p_.hold_timeout(), [this, &ctx, dir] { expire(ctx, dir); });
  }
  void expire(Context& ctx, Direction dir) {
    Held& h = held_[index(dir)];
    h.timer = false;
    if (h.bytes.empty()) return;
    const auto waited = ctx.now() - h.since;
    if (waited >= p_.hold_timeout()) return flush(ctx, dir);
    h.timer = true;  // held again since the timer started: wait out the rest
    ctx.start_timer(p_.hold_timeout() - waited, [this, &ctx, dir] { expire(ctx, dir); });
  }

  const Pattern& p_;
  Held held_[2];
};

class ReplaceFactory final : public MiddlewareFactory {
 public:
  explicit ReplaceFactory(Pattern pattern) : pattern_(std::move(pattern)) {}
  std::unique_ptr<Middleware> create() override { return std::make_unique<Replace>(pattern_); }

 private:
  Pattern pattern_;
};

}  // namespace

void register_replace(Registry& registry) {
  registry.add_middleware(
      "replace", "replaces every occurrence of a byte string with another, across chunks",
      [](Options& options, Services&) -> std::unique_ptr<MiddlewareFactory> {
        auto from = options.require<std::string>("from");
        if (from.empty()) options.fail("from", "expected a non-empty string");
        auto to = options.require<std::string>("to");
        const auto direction =
            options.choice("direction", {"upstream", "downstream", "both"}, "both");
        const auto hold = options.duration("hold_timeout", std::chrono::milliseconds(100));
        return std::make_unique<ReplaceFactory>(
            Pattern(std::move(from), std::move(to), direction, hold));
      });
}

}  // namespace sluice::builtin
