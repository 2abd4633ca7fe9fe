#include "rewrite/rewrite.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rewrite/rule.hpp"

namespace sluice::builtin {
namespace {

using rewrite::Rule;
using rewrite::RuleStream;
using Until = RuleStream::Until;

// What every channel of a listener shares, read-only (a compiled boost::regex may be used by
// many threads at once).
struct Settings {
  std::vector<Rule> rules;
  std::size_t window = 0;
  Clock::duration hold_timeout{};
};

class Rewrite final : public Middleware {
 public:
  explicit Rewrite(const Settings& settings) : s_(settings) {
    for (Side& side : sides_) {
      side.streams.reserve(s_.rules.size());
      for (const Rule& rule : s_.rules) side.streams.emplace_back(rule);
    }
    for (Direction d : {Direction::upstream, Direction::downstream})
      for (const Rule& rule : s_.rules) side(d).applies = side(d).applies || rule.applies(d);
  }

  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    if (!side(dir).applies) return Verdict::pass;
    if (ctx.messages()) {
      chunk.assign(run(dir, chunk.view(), std::nullopt));
      return Verdict::pass;
    }
    chunk.assign(run(dir, chunk.view(), Until::more));
    if (holding(dir)) arm(ctx, dir);
    return Verdict::pass;
  }

  // Before the FIN: what is held is searched once more, now with the end of the stream.
  void on_end(Context& ctx, Direction dir) override {
    if (side(dir).applies && !ctx.messages()) flush(ctx, dir, Until::end);
  }

 private:
  struct Side {
    std::vector<RuleStream> streams;  // one per rule, in rule order
    bool applies = false;             // some rule works in this direction
    Clock::time_point since;          // when bytes were last left held
    bool timer = false;
  };
  Side& side(Direction d) { return sides_[d == Direction::upstream ? 0 : 1]; }

  // Runs `in` through the rules of `dir` in order; each rule's output is the next one's input.
  // `until` empty: `in` is a whole message. The result lives until the next call on this thread.
  std::string_view run(Direction dir, std::string_view in, std::optional<Until> until) {
    thread_local std::string buffers[2];
    std::size_t next = 0;
    for (std::size_t i = 0; i < s_.rules.size(); ++i) {
      if (!s_.rules[i].applies(dir)) continue;
      std::string& out = buffers[next];
      next ^= 1;
      out.clear();
      RuleStream& stream = side(dir).streams[i];
      if (until)
        stream.feed(in, *until, s_.window, out);
      else
        stream.message(in, out);
      in = out;
    }
    return in;
  }

  bool holding(Direction dir) {
    for (const RuleStream& stream : side(dir).streams)
      if (stream.held() != 0) return true;
    return false;
  }

  void flush(Context& ctx, Direction dir, Until until) {
    const std::string_view rest = run(dir, {}, until);
    if (!rest.empty()) ctx.send(dir, rest);
  }

  // As in `replace`: a request/response protocol may send nothing more until it gets an answer,
  // so held bytes must not wait for the next chunk forever. hold_timeout counts from the last
  // chunk that left bytes held.
  void arm(Context& ctx, Direction dir) {
    Side& s = side(dir);
    s.since = ctx.now();
    if (s.timer || s_.hold_timeout == Clock::duration::zero()) return;
    s.timer = true;
    ctx.start_timer(s_.hold_timeout, [this, &ctx, dir] { expire(ctx, dir); });
  }
  void expire(Context& ctx, Direction dir) {
    Side& s = side(dir);
    s.timer = false;
    if (!holding(dir)) return;
    const auto waited = ctx.now() - s.since;
    if (waited >= s_.hold_timeout) return flush(ctx, dir, Until::flush);
    s.timer = true;  // held again since the timer started: wait out the rest
    ctx.start_timer(s_.hold_timeout - waited, [this, &ctx, dir] { expire(ctx, dir); });
  }

  const Settings& s_;
  Side sides_[2];
};

class RewriteFactory final : public MiddlewareFactory {
 public:
  explicit RewriteFactory(Settings settings) : settings_(std::move(settings)) {}
  std::unique_ptr<Middleware> create() override { return std::make_unique<Rewrite>(settings_); }

 private:
  Settings settings_;
};

constexpr std::string_view kRuleKeys[] = {"pattern", "replacement", "direction", "max_matches"};

Rule parse_rule(Options& o) {
  const auto pattern = o.require<std::string>("pattern");
  if (pattern.empty()) o.fail("pattern", "expected a non-empty regular expression");
  std::optional<Rule> compiled;
  try {
    compiled.emplace(o.path(), pattern);
  } catch (const boost::regex_error& e) {
    o.fail("pattern", std::string("invalid regular expression: ") + e.what());
  }
  Rule& rule = *compiled;
  rule.replacement = o.require<std::string>("replacement");
  const auto direction = o.choice("direction", {"upstream", "downstream", "both"}, "both");
  rule.upstream = direction != "downstream";
  rule.downstream = direction != "upstream";
  if (const auto max = o.optional<std::uint64_t>("max_matches")) {
    if (*max == 0) o.fail("max_matches", "expected at least 1 (leave it out for no limit)");
    rule.max_matches = *max;
  }
  return std::move(rule);
}

std::unique_ptr<MiddlewareFactory> make_rewrite(Options& options, Services&) {
  Settings s;
  if (options.has("rules")) {
    for (std::string_view key : kRuleKeys)
      if (options.has(key))
        options.fail(key, "give either \"rules\" or one rule's keys at the top level, not both");
    options.accept("rules");
    const auto& rules = options.json().at("rules");
    if (!rules.is_array() || rules.empty())
      options.fail("rules", "expected a non-empty array of rule objects, got " +
                                (rules.is_array() ? "an empty array" : Options::describe(rules)));
    for (std::size_t i = 0; i < rules.size(); ++i) {
      Options rule(rules[i], options.path_of("rules") + "/" + std::to_string(i));
      s.rules.push_back(parse_rule(rule));
      rule.finish();
    }
  } else {
    s.rules.push_back(parse_rule(options));
  }
  constexpr std::uint64_t kMaxWindow = 1024 * 1024;
  const auto window = options.size("window", 4096);
  if (window == 0 || window > kMaxWindow)
    options.fail("window", "expected a size from 1 byte to 1MiB");
  s.window = static_cast<std::size_t>(window);
  s.hold_timeout = options.duration("hold_timeout", std::chrono::milliseconds(100));
  return std::make_unique<RewriteFactory>(std::move(s));
}

}  // namespace

void register_rewrite(Registry& registry) {
  registry.add_middleware("rewrite",
                          "regex search-and-replace (Perl syntax), on messages or across chunks",
                          make_rewrite);
}

}  // namespace sluice::builtin
