#define BOOST_TEST_MODULE rewrite
#include <boost/regex.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "frame/frame.hpp"
#include "rewrite/rewrite.hpp"
#include "rewrite/rule.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Records what reaches it, to check that held-back bytes arrive before the half-close and that
// an empty message goes on.
class Probe final : public sluice::Middleware {
 public:
  explicit Probe(std::vector<std::string>& events) : events_(events) {}
  sluice::Verdict on_data(sluice::Context&, Direction d, sluice::Chunk& c) override {
    events_.push_back(std::string(to_string(d)) + " data [" + std::string(c.view()) + "]");
    return sluice::Verdict::pass;
  }
  void on_end(sluice::Context&, Direction d) override {
    events_.push_back(std::string(to_string(d)) + " end");
  }

 private:
  std::vector<std::string>& events_;
};

class ProbeFactory final : public sluice::MiddlewareFactory {
 public:
  explicit ProbeFactory(std::vector<std::string>& events) : events_(events) {}
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<Probe>(events_); }

 private:
  std::vector<std::string>& events_;
};

// A test-only layer: every chunk it gets is one message, passed on unchanged, and its server-edge
// partner passes messages back as bytes. The middlewares between them see ctx.messages().
class ChunkIsMessage final : public sluice::Middleware {};
class ChunkIsMessageLayer final : public sluice::MiddlewareFactory {
 public:
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<ChunkIsMessage>();
  }
  std::unique_ptr<sluice::Middleware> create_server_edge(sluice::Middleware&) override {
    return std::make_unique<ChunkIsMessage>();
  }
};

struct Fixture {
  Types types;
  std::vector<std::string> events;
  Fixture() {
    sluice::builtin::register_rewrite(types);
    types.add_middleware("probe", "records events", [this](sluice::Options&, sluice::Services&) {
      return std::make_unique<ProbeFactory>(events);
    });
    types.add_middleware("layer", "each chunk is a message",
                         [](sluice::Options&, sluice::Services&) {
                           return std::make_unique<ChunkIsMessageLayer>();
                         });
  }
  Chain chain(json options) {
    options["type"] = "rewrite";
    return Chain(types, json::array({options}));
  }
};

// The whole-input result the streaming one must agree with: boost::regex_iterator's walk (that
// of regex_replace), with the middleware's syntax, stopping after `max` matches.
std::string reference(std::string_view in, const std::string& pattern,
                      const std::string& replacement,
                      std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  const boost::regex re(pattern, sluice::builtin::rewrite::kSyntax);
  std::string out;
  const char* done = in.data();
  std::uint64_t n = 0;
  for (boost::cregex_iterator it(in.data(), in.data() + in.size(), re), last; it != last && n < max;
       ++it, ++n) {
    out.append(done, (*it)[0].first);
    it->format(std::back_inserter(out), replacement, boost::format_perl, re);
    done = (*it)[0].second;
  }
  out.append(done, in.data() + in.size());
  return out;
}

// Feeds `pieces` upstream, then ends the stream; returns everything that came out.
std::string stream(Harness& h, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) {
    h.feed(Direction::upstream, p);
    out += h.take(Direction::upstream);
  }
  h.finish(Direction::upstream);
  BOOST_TEST_REQUIRE(h.ended(Direction::upstream));
  return out + h.take(Direction::upstream);
}

void expect_config_error(Fixture& f, const json& middlewares, const std::string& path,
                         const std::string& words = "") {
  try {
    Chain c(f.types, middlewares);
    BOOST_FAIL("expected a ConfigError at " + path);
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == path, e.what());
    BOOST_TEST(std::string(e.what()).find(words) != std::string::npos, e.what());
  }
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(stream_mode, Fixture)

BOOST_AUTO_TEST_CASE(rewrites_with_groups_within_one_chunk) {
  auto c = chain({{"pattern", R"((\w+)=(\d+))"}, {"replacement", R"($2=$1 [$&] \U$1\E)"}});
  Harness h(c);
  h.feed(Direction::upstream, "a=1; bb=22;");
  BOOST_TEST(h.take(Direction::upstream) == "1=a [a=1] A; 22=bb [bb=22] BB;");
  h.feed(Direction::upstream, "nothing here\n");  // nothing that could start a match: not held
  BOOST_TEST(h.take(Direction::upstream) == "nothing here\n");
  BOOST_TEST(h.pending_timers() == 0u);
}

BOOST_AUTO_TEST_CASE(a_match_that_reaches_the_end_of_a_chunk_waits_for_the_next) {
  auto c = chain({{"pattern", R"(id=\d+)"}, {"replacement", "id=N"}});
  Harness h(c);
  h.feed(Direction::upstream, "a id=12");  // "id=123" could still come
  BOOST_TEST(h.take(Direction::upstream) == "a ");
  h.feed(Direction::upstream, "3 b");
  BOOST_TEST(h.take(Direction::upstream) == "id=N b");
  h.feed(Direction::upstream, "c id=4");
  h.advance(100ms);  // nothing came: decided with what there is
  BOOST_TEST(h.take(Direction::upstream) == "c id=N");
}

// Every way to cut the input in two and in three pieces gives the whole-input result.
BOOST_AUTO_TEST_CASE(matches_split_at_every_point) {
  struct Case {
    std::string pattern, replacement, input;
  };
  const std::vector<Case> cases = {
      {R"("token":"[^"]*")", R"("token":"***")", R"({"user":"ann","token":"s3cr3t!"})"},
      {R"(\d+)", "#", "ab 12345 cd 6"},              // greedy: a match may grow
      {"abc|a", "<$&>", "xabcyab az"},               // an earlier alternative wins
      {R"((?<=id=)\d+)", "N", "id=42&id=7&xid=9"},   // lookbehind across chunks
      {R"(\bcat\b)", "dog", "cat concat cats cat"},  // word boundaries at chunk ends
      {R"(^Host: .*$)", "Host: new", "GET /\r\nHost: old.example\r\nX: 1\r\n"},  // lines
      {R"(x*)", "-", "abxxc"},                                                   // empty matches
      {R"(ab(?=cd)|a)", "[$&]", "abce abcd"},  // lookahead that needs more bytes
  };
  for (const Case& k : cases) {
    const std::string want = reference(k.input, k.pattern, k.replacement);
    auto c = chain({{"pattern", k.pattern}, {"replacement", k.replacement}});
    for (std::size_t i = 0; i <= k.input.size(); ++i) {
      for (std::size_t j = i; j <= k.input.size(); ++j) {
        Harness h(c);
        const std::string got =
            stream(h, {k.input.substr(0, i), k.input.substr(i, j - i), k.input.substr(j)});
        BOOST_TEST_REQUIRE(got == want, "pattern " << k.pattern << " cut at " << i << "," << j);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(holds_only_from_where_a_match_could_start) {
  auto c = chain({{"pattern", R"("token":"[^"]*")"}, {"replacement", R"("token":"***")"}});
  Harness h(c);
  h.feed(Direction::upstream, R"({"user":"ann","tok)");
  BOOST_TEST(h.take(Direction::upstream) == R"({"user":"ann",)");
  h.feed(Direction::upstream, R"(en":"abc)");
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.feed(Direction::upstream, R"(def"})");
  BOOST_TEST(h.take(Direction::upstream) == R"("token":"***"})");
}

BOOST_AUTO_TEST_CASE(a_match_longer_than_the_window_is_not_found) {
  auto c = chain({{"pattern", "<[^>]*>"}, {"replacement", "[]"}, {"window", 8}});
  {
    Harness h(c);  // within the window: found across chunks
    BOOST_TEST(stream(h, {"x<ab", "cd>y"}) == "x[]y");
  }
  {
    Harness h(c);
    h.feed(Direction::upstream, "x<");
    BOOST_TEST(h.take(Direction::upstream) == "x");
    std::string out;
    for (int i = 0; i < 20; ++i) {
      h.feed(Direction::upstream, "a");
      out += h.take(Direction::upstream);
      const std::size_t fed = 2 + static_cast<std::size_t>(i) + 1, emitted = 1 + out.size();
      BOOST_TEST_REQUIRE(fed - emitted <= 8u);  // never more than `window` bytes held back
    }
    h.feed(Direction::upstream, ">");
    h.finish(Direction::upstream);
    out += h.take(Direction::upstream);
    BOOST_TEST(out == "<" + std::string(20, 'a') + ">");  // 22 bytes long: left alone
  }
  {
    Harness h(c);  // a later, shorter match is still found after the long one is given up
    BOOST_TEST(stream(h, {"<aaaaaaaaaa", "aa <b> c"}) == "<aaaaaaaaaaaa [] c");
  }
}

BOOST_AUTO_TEST_CASE(max_matches_per_channel_and_direction) {
  auto c = chain({{"pattern", "a+"}, {"replacement", "X"}, {"max_matches", 2}});
  Harness h(c);
  h.feed(Direction::upstream, "a b aa ");
  h.feed(Direction::downstream, "aaa b ");
  h.feed(Direction::upstream, "a a");
  h.feed(Direction::downstream, "a a");
  BOOST_TEST(h.take(Direction::upstream) == "X b X a a");  // no hold once the budget is spent
  BOOST_TEST(h.take(Direction::downstream) == "X b X a");
  h.finish(Direction::downstream);
  BOOST_TEST(h.take(Direction::downstream) == "");
  BOOST_TEST(h.pending_timers() == 0u);
  Harness next(c);  // every channel has its own budget
  next.feed(Direction::upstream, "a a a ");
  BOOST_TEST(next.take(Direction::upstream) == "X X a ");
}

BOOST_AUTO_TEST_CASE(direction_filter) {
  for (const std::string dir : {"upstream", "downstream"}) {
    auto c = chain({{"pattern", "o+"}, {"replacement", "0"}, {"direction", dir}});
    Harness h(c);
    h.feed(Direction::upstream, "foo!");
    h.feed(Direction::downstream, "foo!");
    const bool up = dir == "upstream";
    BOOST_TEST(h.take(Direction::upstream) == (up ? "f0!" : "foo!"));
    BOOST_TEST(h.take(Direction::downstream) == (up ? "foo!" : "f0!"));
  }
}

BOOST_AUTO_TEST_CASE(rules_apply_in_order_each_to_the_output_of_the_last) {
  Chain c(types, json::parse(R"json([{"type": "rewrite", "rules": [
      {"pattern": "cat", "replacement": "dog"},
      {"pattern": "dog(s?)", "replacement": "wolf$1", "direction": "upstream"},
      {"pattern": "o", "replacement": "0", "max_matches": 1}]}])json"));
  Harness h(c);
  BOOST_TEST(stream(h, {"a c", "ats ca", "t"}) == "a w0lfs wolf");
  h.feed(Direction::downstream, "cat dog");
  BOOST_TEST(h.take(Direction::downstream) == "d0g dog");
}

BOOST_AUTO_TEST_CASE(held_bytes_go_out_at_the_half_close_before_the_end) {
  Chain c(types, json::parse(R"([{"type": "rewrite", "pattern": "\\d+\\z", "replacement": "<N>"},
                                  {"type": "probe"}])"));
  Harness h(c);
  h.feed(Direction::upstream, "x 12");
  BOOST_TEST(h.take(Direction::upstream) == "x ");
  h.feed(Direction::upstream, "3");
  BOOST_TEST(!h.ended(Direction::upstream));
  h.finish(Direction::upstream);  // only now can \z match
  BOOST_TEST(h.take(Direction::upstream) == "<N>");
  BOOST_TEST(h.ended(Direction::upstream));
  const std::vector<std::string> expected = {"upstream data [x ]", "upstream data [<N>]",
                                             "upstream end"};
  BOOST_TEST(events == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(randomized_against_whole_input) {
  std::mt19937 rng(20261124);
  auto pick = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  const std::vector<std::string> patterns = {
      "ab",      "a+b",   "ab|b", "abab|ab", "b(?=ab)",       "(?<=ab)a", "\\bab\\b", "^a",
      "b$",      "a.*?b", "a.*b", "x*",      "(a|ab)(c|bcd)", "\\Aa",     "b\\z",     "a{2,3}",
      "(ab)\\1", "[^ ]+", "^$",   "a(?!b)",  "a?b?",          "(?i)AB",
  };
  const std::vector<std::string> replacements = {"", "X", "<$&>", "$1$1", "[\\U$&]"};
  for (int round = 0; round < 3000; ++round) {
    const std::string& pattern = patterns[pick(0, patterns.size() - 1)];
    const std::string& replacement = replacements[pick(0, replacements.size() - 1)];
    std::string input;
    for (std::size_t n = pick(0, 30); n > 0; --n) input += "abcd \n"[pick(0, 5)];
    auto c = chain({{"pattern", pattern}, {"replacement", replacement}});
    Harness h(c);
    std::vector<std::string> pieces;
    for (std::size_t at = 0; at < input.size();) {
      const std::size_t n = pick(0, 6);
      pieces.push_back(input.substr(at, n));
      at += n;
    }
    const std::string got = stream(h, pieces), want = reference(input, pattern, replacement);
    BOOST_TEST_REQUIRE(got == want, "round " << round << " pattern " << pattern << " input \""
                                             << input << "\" in " << pieces.size() << " pieces: \""
                                             << got << "\" != \"" << want << "\"");
  }
}

BOOST_AUTO_TEST_CASE(binary_bytes) {
  // JSON "\u0000" reaches the regex as a NUL byte; \xff in the regex is the byte 0xff.
  auto c = chain({{"pattern", std::string("\0\x01", 2) + "|\\xff+"}, {"replacement", "."}});
  Harness h(c);
  const std::string in(
      "a\0\x01"
      "b\xff\xff"
      "c\0",
      8);
  BOOST_TEST(stream(h, {in.substr(0, 2), in.substr(2)}) == std::string("a.b.c\0", 6));
}

BOOST_AUTO_TEST_CASE(a_runaway_match_closes_only_its_channel) {
  auto c = chain({{"pattern", "(a*)*b"}, {"replacement", "x"}});
  Harness h(c);
  h.feed(Direction::upstream, std::string(100000, 'a'));
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason().find("rule /middlewares/0 gave up") != std::string::npos,
             h.close_reason());
  Harness other(c);
  other.feed(Direction::upstream, "aab!");
  BOOST_TEST(other.take(Direction::upstream) == "x!");
  BOOST_TEST(!other.closed());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(hold_timeout, Fixture)

BOOST_AUTO_TEST_CASE(held_bytes_go_out_after_hold_timeout) {
  auto c = chain({{"pattern", "needle"}, {"replacement", "N"}});  // default: 100ms
  Harness h(c);
  h.feed(Direction::upstream, "xxnee");
  BOOST_TEST(h.take(Direction::upstream) == "xx");
  h.advance(99ms);
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(1ms);
  BOOST_TEST(h.take(Direction::upstream) == "nee");
  // Nothing is left behind: a later match is still found, and the end adds nothing.
  h.feed(Direction::upstream, "a needle");
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "a N");
}

BOOST_AUTO_TEST_CASE(the_flush_still_rewrites_whole_matches_in_what_was_held) {
  auto c = chain({{"pattern", R"(abc|b|\d+)"}, {"replacement", "<$&>"}});
  Harness h(c);
  h.feed(Direction::upstream, "xab");  // "abc" could still come: held from "a"
  BOOST_TEST(h.take(Direction::upstream) == "x");
  h.advance(100ms);
  BOOST_TEST(h.take(Direction::upstream) == "a<b>");
  h.feed(Direction::upstream, "c 12");  // "c" alone is no match; "12" may grow
  BOOST_TEST(h.take(Direction::upstream) == "c ");
  h.advance(100ms);
  BOOST_TEST(h.take(Direction::upstream) == "<12>");
}

BOOST_AUTO_TEST_CASE(hold_timeout_counts_from_the_last_chunk) {
  auto c = chain({{"pattern", "needle"}, {"replacement", "N"}, {"hold_timeout", "100ms"}});
  Harness h(c);
  h.feed(Direction::upstream, "ne");
  h.advance(60ms);
  h.feed(Direction::upstream, "e");  // still a possible start: held since now
  h.advance(40ms);
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(59ms);
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(1ms);
  BOOST_TEST(h.take(Direction::upstream) == "nee");
}

BOOST_AUTO_TEST_CASE(one_timer_flushes_every_rule_in_order) {
  Chain c(types, json::parse(R"([{"type": "rewrite", "rules": [
      {"pattern": "abc", "replacement": "X"},
      {"pattern": "aX|a", "replacement": "Y"}]}])"));
  Harness h(c);
  h.feed(Direction::downstream, "-ab");  // rule 1 holds "ab" (it could become "abc")
  BOOST_TEST(h.take(Direction::downstream) == "-");
  h.advance(100ms);  // rule 1 lets "ab" go; rule 2 then sees "a" with nothing after it
  BOOST_TEST(h.take(Direction::downstream) == "Yb");
  BOOST_TEST(h.pending_timers() == 0u);
}

BOOST_AUTO_TEST_CASE(hold_timeout_zero_holds_until_more_bytes_or_the_end) {
  auto c = chain({{"pattern", "needle"}, {"replacement", "N"}, {"hold_timeout", 0}});
  Harness h(c);
  h.feed(Direction::upstream, "xxnee");
  h.advance(10s);
  BOOST_TEST(h.take(Direction::upstream) == "xx");
  BOOST_TEST(h.pending_timers() == 0u);
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "nee");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(message_mode, Fixture)

Chain layered(Fixture& f, const json& rewrite) {
  json r = rewrite;
  r["type"] = "rewrite";
  return Chain(f.types, json::array({{{"type", "layer"}}, r, {{"type", "probe"}}}));
}

BOOST_AUTO_TEST_CASE(each_message_is_rewritten_whole_and_nothing_is_held) {
  auto c = layered(*this, {{"pattern", R"(\Aneedle|\d+\z)"}, {"replacement", "<$&>"}});
  Harness h(c);
  h.feed(Direction::upstream, "needle 12");
  BOOST_TEST(h.take(Direction::upstream) == "<needle> <12>");
  // Two messages: "nee" and "dle" are not one match, and nothing waits for a next chunk.
  h.feed(Direction::upstream, "x nee");
  BOOST_TEST(h.take(Direction::upstream) == "x nee");
  h.feed(Direction::upstream, "dle");
  BOOST_TEST(h.take(Direction::upstream) == "dle");
  BOOST_TEST(h.pending_timers() == 0u);
  h.feed(Direction::downstream, "needle needle");
  BOOST_TEST(h.take(Direction::downstream) == "<needle> needle");
}

BOOST_AUTO_TEST_CASE(an_empty_message_is_still_a_message) {
  auto c = layered(*this, {{"pattern", "^$"}, {"replacement", "EMPTY"}, {"max_matches", 1}});
  Harness h(c);
  h.feed(Direction::upstream, "");
  h.feed(Direction::upstream, "");  // the budget is spent: passes on empty
  h.feed(Direction::upstream, "a");
  const std::vector<std::string> expected = {"upstream data [EMPTY]", "upstream data []",
                                             "upstream data [a]"};
  BOOST_TEST(events == expected, boost::test_tools::per_element());
  BOOST_TEST(h.take(Direction::upstream) == "EMPTYa");
}

BOOST_AUTO_TEST_CASE(a_message_may_be_rewritten_to_nothing) {
  auto c = layered(*this, {{"pattern", "(?s).*ping.*"}, {"replacement", ""}});
  Harness h(c);
  h.feed(Direction::upstream, "ping\r\n");
  h.feed(Direction::upstream, "data");
  const std::vector<std::string> expected = {"upstream data []", "upstream data [data]"};
  BOOST_TEST(events == expected, boost::test_tools::per_element());
  h.finish(Direction::upstream);
  BOOST_TEST(h.ended(Direction::upstream));
  BOOST_TEST(h.take(Direction::upstream) == "data");
}

BOOST_AUTO_TEST_CASE(after_the_frame_layer_each_line_is_a_message) {
  sluice::builtin::register_frame(types);
  Chain c(types, json::parse(R"json([{"type": "frame", "format": "line"},
      {"type": "rewrite", "rules": [
          {"pattern": "\\Auser=(\\w+)\\z", "replacement": "user=<$1>"},
          {"pattern": "\\A\\z", "replacement": "(empty)"}]}])json"));
  Harness h(c);
  h.feed(Direction::upstream, "user=ann\nxuser=bob\nus");
  BOOST_TEST(h.take(Direction::upstream) == "user=<ann>\nxuser=bob\n");
  h.feed(Direction::upstream, "er=eve\n\n");
  BOOST_TEST(h.take(Direction::upstream) == "user=<eve>\n(empty)\n");
  h.feed(Direction::downstream, "user=x\n");
  BOOST_TEST(h.take(Direction::downstream) == "user=<x>\n");
  BOOST_TEST(h.pending_timers() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_CASE(config_errors_name_the_json_path, Fixture) {
  const auto one = [](json extra) {
    json m = {{"type", "rewrite"}, {"pattern", "a"}, {"replacement", "b"}};
    m.update(extra);
    return json::array({m});
  };
  expect_config_error(*this, one({{"pattern", "(a"}}), "/middlewares/0/pattern",
                      "invalid regular expression: Unmatched marking parenthesis");
  expect_config_error(*this, one({{"pattern", ""}}), "/middlewares/0/pattern", "non-empty");
  expect_config_error(*this, one({{"pattern", 5}}), "/middlewares/0/pattern", "a string");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "pattern": "a"}])"),
                      "/middlewares/0/replacement", "missing");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "replacement": "a"}])"),
                      "/middlewares/0/pattern", "missing");
  expect_config_error(*this, one({{"direction", "sideways"}}), "/middlewares/0/direction");
  expect_config_error(*this, one({{"max_matches", 0}}), "/middlewares/0/max_matches", "at least 1");
  expect_config_error(*this, one({{"max_matches", -1}}), "/middlewares/0/max_matches");
  expect_config_error(*this, one({{"window", 0}}), "/middlewares/0/window", "1MiB");
  expect_config_error(*this, one({{"window", "2MiB"}}), "/middlewares/0/window", "1MiB");
  expect_config_error(*this, one({{"hold_timeout", "soon"}}), "/middlewares/0/hold_timeout");
  expect_config_error(*this, one({{"patern", "a"}}), "/middlewares/0/patern", "unknown key");
  expect_config_error(*this, one({{"rules", json::array()}}), "/middlewares/0/pattern", "not both");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "rules": []}])"),
                      "/middlewares/0/rules", "an empty array");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "rules": {}}])"),
                      "/middlewares/0/rules", "an object");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "rules": ["a"]}])"),
                      "/middlewares/0/rules/0", "expected an object");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "rules": [
                          {"pattern": "a", "replacement": "b"},
                          {"pattern": "a{2,1}", "replacement": "b"}]}])"),
                      "/middlewares/0/rules/1/pattern", "invalid regular expression");
  expect_config_error(*this, json::parse(R"([{"type": "rewrite", "rules": [
                          {"pattern": "a", "replacement": "b", "window": 5}]}])"),
                      "/middlewares/0/rules/0/window", "unknown key");
}
