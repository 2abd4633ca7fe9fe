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
  Pattern(std::string from, std::string to, std::string_view direction)
      : from_(std::move(from)),
        to_(std::move(to)),
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
  std::vector<std::size_t> border_;
  bool upstream_;
  bool downstream_;
};

class Replace final : public Middleware {
 public:
  explicit Replace(const Pattern& pattern) : p_(pattern) {}

  Verdict on_data(Context&, Direction dir, Chunk& chunk) override {
    if (!p_.applies(dir)) return Verdict::pass;
    std::string& carry = carry_[index(dir)];
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
    return Verdict::pass;
  }

  void on_end(Context& ctx, Direction dir) override {
    // The stream ended inside a possible match: it was not one, so it goes out unchanged.
    const std::string rest = std::exchange(carry_[index(dir)], {});
    if (!rest.empty()) ctx.send(dir, rest);
  }

 private:
  static std::size_t index(Direction d) { return d == Direction::upstream ? 0 : 1; }

  const Pattern& p_;
  std::string carry_[2];  // held-back bytes per direction, always shorter than `from`
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
        return std::make_unique<ReplaceFactory>(Pattern(std::move(from), std::move(to), direction));
      });
}

}  // namespace sluice::builtin
