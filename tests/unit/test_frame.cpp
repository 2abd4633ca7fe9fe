#define BOOST_TEST_MODULE frame
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "echo/echo.hpp"
#include "frame/frame.hpp"
#include "hexdump/hexdump.hpp"
#include "replace/replace.hpp"
#include "sluice/testing.hpp"

using sluice::Chunk;
using sluice::Context;
using sluice::Direction;
using sluice::Verdict;
using namespace sluice::testing;
using nlohmann::json;
using namespace std::string_literals;

namespace {

// What a middleware after `frame` sees: one entry per on_data, per direction. It passes each
// message on with "!" appended, so the re-encoding must follow the new length.
struct Seen {
  std::vector<std::string> messages[2];
  bool in_messages = false;
};

class Collect final : public sluice::Middleware {
 public:
  explicit Collect(Seen& seen) : seen_(seen) {}
  void on_open(Context& ctx) override { seen_.in_messages = ctx.messages(); }
  Verdict on_data(Context&, Direction d, Chunk& c) override {
    seen_.messages[d == Direction::upstream ? 0 : 1].emplace_back(c.view());
    c.append("!");
    return Verdict::pass;
  }

 private:
  Seen& seen_;
};

class CollectFactory final : public sluice::MiddlewareFactory {
 public:
  explicit CollectFactory(Seen& seen) : seen_(seen) {}
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<Collect>(seen_); }

 private:
  Seen& seen_;
};

// Answers each upstream message itself, towards the client.
class Answer final : public sluice::Middleware {
  Verdict on_data(Context& ctx, Direction d, Chunk& c) override {
    if (d != Direction::upstream) return Verdict::pass;
    ctx.send(Direction::downstream, "re:" + std::string(c.view()));
    return Verdict::drop;
  }
};

// The first time an answer passes towards the client, injects `bytes` upstream.
class Inject final : public sluice::Middleware {
 public:
  explicit Inject(std::string bytes) : bytes_(std::move(bytes)) {}
  Verdict on_data(Context& ctx, Direction d, Chunk&) override {
    if (d == Direction::downstream && !bytes_.empty())
      ctx.send(Direction::upstream, std::exchange(bytes_, {}));
    return Verdict::pass;
  }

 private:
  std::string bytes_;
};

template <class M, class... Args>
class MakeFactory final : public sluice::MiddlewareFactory {
 public:
  explicit MakeFactory(Args... args) : args_(std::move(args)...) {}
  std::unique_ptr<sluice::Middleware> create() override {
    return std::apply([](auto&... a) { return std::make_unique<M>(a...); }, args_);
  }

 private:
  std::tuple<Args...> args_;
};

std::string be32(std::uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}
std::string framed(const std::string& payload) {
  return be32(payload.size()) + payload;
}

struct Fixture {
  Types types;
  Seen seen;
  Fixture() {
    sluice::builtin::register_frame(types);
    sluice::builtin::register_hexdump(types);
    sluice::builtin::register_echo(types);
    sluice::builtin::register_replace(types);
    types.add_middleware("answer", "test", [](sluice::Options&, sluice::Services&) {
      return std::make_unique<MakeFactory<Answer>>();
    });
    types.add_middleware("inject", "test", [](sluice::Options& o, sluice::Services&) {
      return std::make_unique<MakeFactory<Inject, std::string>>(o.require<std::string>("bytes"));
    });
    types.add_middleware("collect", "test", [this](sluice::Options&, sluice::Services&) {
      return std::make_unique<CollectFactory>(seen);
    });
  }
  // frame with `options`, then collect.
  Chain chain(json options = json::object()) {
    options["type"] = "frame";
    return Chain(types, json::array({options, {{"type", "collect"}}}));
  }
  std::vector<std::string>& up() { return seen.messages[0]; }
  std::vector<std::string>& down() { return seen.messages[1]; }
};

std::string config_error(Types& types, json options) {
  options["type"] = "frame";
  try {
    Chain c(types, json::array({options}));
  } catch (const sluice::ConfigError& e) {
    return e.path() + ": " + e.message();
  }
  return "no error";
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(frame, Fixture)

BOOST_AUTO_TEST_CASE(whole_messages_at_every_split_point_both_ways_and_reencoded) {
  const std::string stream = framed("hello") + framed("") + framed("world, again");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    for (Direction dir : {Direction::upstream, Direction::downstream}) {
      seen = {};
      auto c = chain();
      Harness h(c);
      BOOST_TEST(seen.in_messages);
      h.feed(dir, stream.substr(0, cut));
      h.feed(dir, stream.substr(cut));
      const auto& got = seen.messages[dir == Direction::upstream ? 0 : 1];
      BOOST_TEST(got == (std::vector<std::string>{"hello", "", "world, again"}),
                 boost::test_tools::per_element());
      BOOST_TEST(h.take(dir) == framed("hello!") + framed("!") + framed("world, again!"));
      BOOST_TEST(!h.closed());
    }
  }
}

BOOST_AUTO_TEST_CASE(length_variants_little_endian_one_byte_and_header_included) {
  auto c = chain({{"length_bytes", 2}, {"byte_order", "little"}, {"length_includes_header", true}});
  Harness h(c);
  h.feed(Direction::upstream,
         "\x05\x00"
         "abc"
         "\x02\x00"s);
  BOOST_TEST(up() == (std::vector<std::string>{"abc", ""}), boost::test_tools::per_element());
  BOOST_TEST(h.take(Direction::upstream) ==
             "\x06\x00"
             "abc!"
             "\x03\x00!"s);

  seen = {};
  auto one = chain({{"length_bytes", 1}});
  Harness h1(one);
  h1.feed(Direction::downstream, "\x03xyz"s);
  BOOST_TEST(down() == std::vector<std::string>{"xyz"}, boost::test_tools::per_element());
  BOOST_TEST(h1.take(Direction::downstream) == "\x04xyz!"s);

  seen = {};
  auto eight = chain({{"length_bytes", 8}});
  Harness h8(eight);
  h8.feed(Direction::upstream, "\0\0\0\0\0\0\0\x02hi"s);
  BOOST_TEST(h8.take(Direction::upstream) == "\0\0\0\0\0\0\0\x03hi!"s);
}

BOOST_AUTO_TEST_CASE(a_message_that_no_longer_fits_the_length_field_closes_the_channel) {
  auto c = chain({{"length_bytes", 1}});
  Harness h(c);
  h.feed(Direction::upstream, "\xff" + std::string(255, 'a'));  // 255 + "!" > 255
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason() ==
             "frame: a upstream message of 256 bytes does not fit a 1-byte length");
  BOOST_TEST(h.take(Direction::upstream).empty());
}

BOOST_AUTO_TEST_CASE(lines_with_lf_and_crlf) {
  auto c = chain({{"format", "line"}});
  Harness h(c);
  h.feed(Direction::upstream, "GET /\r\n\nta");
  h.feed(Direction::upstream, "il\n");
  BOOST_TEST(up() == (std::vector<std::string>{"GET /\r", "", "tail"}),
             boost::test_tools::per_element());
  BOOST_TEST(h.take(Direction::upstream) == "GET /\r!\n!\ntail!\n");

  seen = {};
  auto crlf = chain({{"format", "line"}, {"delimiter", "\r\n"}});
  Harness h2(crlf);
  std::string stream = "a\nb\r\n\r\nc\r";
  for (char ch : stream) h2.feed(Direction::downstream, std::string(1, ch));  // byte by byte
  h2.feed(Direction::downstream, "\n");
  BOOST_TEST(down() == (std::vector<std::string>{"a\nb", "", "c"}),
             boost::test_tools::per_element());
  BOOST_TEST(h2.take(Direction::downstream) == "a\nb!\r\n!\r\nc!\r\n");
}

BOOST_AUTO_TEST_CASE(a_frame_over_max_frame_closes_with_a_reason) {
  auto c = chain({{"max_frame", "1KiB"}});
  Harness h(c);
  h.feed(Direction::upstream, framed("ok") + be32(1025));
  BOOST_TEST(up() == std::vector<std::string>{"ok"}, boost::test_tools::per_element());
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason() ==
             "frame: the client sent a frame of 1025 bytes, over max_frame (1024)");

  auto lines = chain({{"format", "line"}, {"max_frame", 8}});
  Harness hl(lines);
  hl.feed(Direction::downstream, "12345678\n123");
  hl.feed(Direction::downstream, "456789");
  BOOST_TEST(hl.closed());
  BOOST_TEST(hl.close_reason() == "frame: the upstream sent a line longer than max_frame (8)");
}

BOOST_AUTO_TEST_CASE(a_stream_that_ends_inside_a_frame_is_reported) {
  {
    auto c = chain();
    Harness h(c);
    h.feed(Direction::upstream, framed("whole") + be32(10) + "abc");
    h.finish(Direction::upstream);
    BOOST_TEST(up() == std::vector<std::string>{"whole"}, boost::test_tools::per_element());
    BOOST_TEST(h.close_reason() ==
               "frame: the client ended inside a frame (3 of 10 bytes of payload)");
  }
  {
    auto c = chain();
    Harness h(c);
    h.feed(Direction::downstream, "\0\0"s);
    h.finish(Direction::downstream);
    BOOST_TEST(h.close_reason() ==
               "frame: the upstream ended inside a frame (2 of the 4 bytes of a length field)");
  }
  {
    auto c = chain({{"format", "line"}});
    Harness h(c);
    h.feed(Direction::upstream, "done\nhalf");
    h.finish(Direction::upstream);
    BOOST_TEST(h.close_reason() ==
               "frame: the client ended inside a frame (4 bytes of a line with no delimiter)");
  }
  {  // ending on a frame boundary is a clean half-close
    auto c = chain();
    Harness h(c);
    h.feed(Direction::upstream, framed("x"));
    h.finish(Direction::upstream);
    BOOST_TEST(!h.closed());
    BOOST_TEST(h.ended(Direction::upstream));
  }
}

BOOST_AUTO_TEST_CASE(hexdump_after_frame_dumps_numbered_messages) {
  Chain c(types, json::parse(R"([{"type": "frame", "format": "line"}, {"type": "hexdump"}])"));
  Harness h(c);
  h.feed(Direction::upstream, "ab\ncd\n");
  BOOST_TEST_REQUIRE(h.logs.size() == 2u);
  BOOST_TEST(h.logs[0] ==
             "hexdump: upstream message 1 length 2\n"
             "00000000  61 62                                             |ab|");
  BOOST_TEST(h.logs[1].rfind("hexdump: upstream message 2 length 2\n00000000  63 64", 0) == 0u);
  BOOST_TEST(h.take(Direction::upstream) == "ab\ncd\n");
}

BOOST_AUTO_TEST_CASE(bad_options_name_their_path) {
  BOOST_TEST(config_error(types, {{"length_bytes", 3}}) ==
             "/middlewares/0/length_bytes: expected 1, 2, 4 or 8, got 3");
  BOOST_TEST(config_error(types, {{"format", "xml"}}) ==
             R"(/middlewares/0/format: expected one of "length", "line", got "xml")");
  BOOST_TEST(config_error(types, {{"format", "line"}, {"delimiter", ";"}}) ==
             R"(/middlewares/0/delimiter: expected "\n" or "\r\n")");
  BOOST_TEST(config_error(types, {{"format", "line"}, {"length_bytes", 2}}) ==
             R"(/middlewares/0/length_bytes: applies to "format": "length" only)");
  BOOST_TEST(config_error(types, {{"delimiter", "\n"}}) ==
             R"(/middlewares/0/delimiter: applies to "format": "line" only)");
  BOOST_TEST(config_error(types, {{"max_frame", 0}}) ==
             "/middlewares/0/max_frame: expected a size from 1 byte to 1GiB");
  BOOST_TEST(config_error(types, {{"max_frame", "2GiB"}}) ==
             "/middlewares/0/max_frame: expected a size from 1 byte to 1GiB");
}

BOOST_AUTO_TEST_CASE(echo_and_replace_after_frame_work_per_message) {
  Chain e(types, json::parse(R"([{"type": "frame"}, {"type": "echo"}])"));
  Harness he(e);
  he.feed(Direction::upstream, framed("ping") + framed(""));
  BOOST_TEST(he.take(Direction::downstream) == framed("ping") + framed(""));
  BOOST_TEST(he.take(Direction::upstream).empty());  // no empty frames towards the upstream

  Chain r(types, json::parse(R"([{"type": "frame"}, {"type": "replace", "from": "abc",
                                   "to": "X"}])"));
  Harness hr(r);
  hr.feed(Direction::upstream, framed("xyzab") + framed("cabc"));
  // Nothing held back across messages: "ab" + "c" is not a match, "abc" inside one is.
  BOOST_TEST(hr.take(Direction::upstream) == framed("xyzab") + framed("cX"));
  BOOST_TEST(hr.pending_timers() == 0u);
}

// An answer makes a middleware before frame inject more frames while frame is still sending the
// messages of the chunk it decodes: they are decoded after those, in stream order.
BOOST_AUTO_TEST_CASE(bytes_that_come_back_while_decoding_follow_in_order) {
  const json chain = {
      {{"type", "inject"}, {"bytes", framed("third")}}, {{"type", "frame"}}, {{"type", "answer"}}};
  Chain c(types, chain);
  Harness h(c);
  h.feed(Direction::upstream, framed("first") + framed("second"));
  BOOST_TEST(h.take(Direction::downstream) ==
             framed("re:first") + framed("re:second") + framed("re:third"));
  BOOST_TEST(!h.closed());
}

BOOST_AUTO_TEST_SUITE_END()
