// The recording format (encode/decode, base64, bad lines) and the record middleware through the
// harness, writing into a temporary folder.
#define BOOST_TEST_MODULE record
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "record/format/recording.hpp"
#include "record/record.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
namespace rec = sluice::recording;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string all_byte_values(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return s;
}

std::vector<rec::Line> read_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<rec::Line> out;
  rec::read_lines(in, [&](rec::Line&& l, std::size_t) {
    out.push_back(std::move(l));
    return true;
  });
  return out;
}

template <class E>
const E& as(const rec::Line& line) {
  BOOST_TEST_REQUIRE(std::holds_alternative<E>(line.event));
  return std::get<E>(line.event);
}

std::string decode_error(std::string_view text) {
  try {
    rec::decode(text);
  } catch (const rec::FormatError& e) {
    return e.what();
  }
  return "(decoded)";
}

// Rejects every channel in on_open, before record's own on_open.
class Reject final : public sluice::Middleware {
 public:
  void on_open(sluice::Context& ctx) override { ctx.close("rejected by test"); }
};
// A do-nothing layer: the middlewares after it see messages.
class PassLayerFactory final : public sluice::MiddlewareFactory {
 public:
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<sluice::Middleware>();
  }
  std::unique_ptr<sluice::Middleware> create_server_edge(sluice::Middleware&) override {
    return std::make_unique<sluice::Middleware>();
  }
};
template <class M>
class SimpleFactory final : public sluice::MiddlewareFactory {
 public:
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<M>(); }
};

struct Fixture {
  Types types;
  std::filesystem::path dir;
  Fixture() {
    sluice::builtin::register_record(types);
    types.add_middleware("reject", "rejects", [](sluice::Options&, sluice::Services&) {
      return std::make_unique<SimpleFactory<Reject>>();
    });
    types.add_middleware("layer", "a layer", [](sluice::Options&, sluice::Services&) {
      return std::make_unique<PassLayerFactory>();
    });
    static int n = 0;
    dir = std::filesystem::temp_directory_path() /
          ("sluice-record-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
  json chain(const std::string& path, json extra = json::object()) const {
    extra["type"] = "record";
    extra["path"] = path;
    return json::array({extra});
  }
  std::string config_error(const json& middlewares) {
    try {
      Chain c(types, middlewares);
    } catch (const sluice::ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(format)

BOOST_AUTO_TEST_CASE(base64_known_vectors) {
  // RFC 4648, section 10.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (auto [plain, encoded] : vectors) {
    BOOST_TEST(rec::base64_encode(plain) == encoded);
    BOOST_TEST(rec::base64_decode(encoded).value_or("(none)") == plain);
  }
}

BOOST_AUTO_TEST_CASE(base64_round_trip_of_every_byte_value_and_length) {
  for (std::size_t n = 0; n < 600; ++n) {
    const std::string bytes = all_byte_values(n);
    const std::string encoded = rec::base64_encode(bytes);
    BOOST_TEST(encoded.size() == 4 * ((n + 2) / 3));
    BOOST_TEST(rec::base64_decode(encoded).value_or("(none)") == bytes, "length " << n);
  }
}

BOOST_AUTO_TEST_CASE(base64_refuses_what_is_not_canonical) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zg==Zg==", "=Zm9", "Zm=v", " Zm9v", "Zm9v\n",
                          "Zm9 ", "Zm$v", "Zm9v\r\n"})
    BOOST_TEST(!rec::base64_decode(bad).has_value(), "\"" << bad << "\"");
}

BOOST_AUTO_TEST_CASE(every_event_round_trips) {
  const std::vector<rec::Line> lines = {
      {7, 0, rec::Open{"2026-01-02T03:04:05.678Z", "web", "127.0.0.1:5000", "10.0.0.1:80", true}},
      {7, 0.5, rec::Connected{"10.0.0.1:80"}},
      {7, 0.75, rec::Data{Direction::upstream, all_byte_values(300)}},
      {7, 1, rec::Data{Direction::downstream, ""}},
      {7, 1.25, rec::End{Direction::downstream}},
      {7, 1.5, rec::Truncated{}},
      {7, 2.000001,
       rec::Close{"2026-01-02T03:04:07.678Z", "client closed", true, 1, 2, 3,
                  18446744073709551615u}},
  };
  for (const auto& line : lines) {
    const std::string text = rec::encode(line);
    BOOST_TEST(text.back() == '\n');
    BOOST_TEST(text.find('\n') == text.size() - 1);  // one line, whatever the bytes
    const rec::Line back = rec::decode(text);
    BOOST_TEST(back.channel == line.channel);
    BOOST_TEST(back.t == line.t);
    BOOST_TEST(back.event.index() == line.event.index());
    BOOST_TEST(rec::encode(back) == text);
  }
  const auto data = rec::decode(rec::encode(lines[2]));
  BOOST_TEST(std::get<rec::Data>(data.event).bytes == all_byte_values(300));
  BOOST_TEST((std::get<rec::Data>(data.event).direction == Direction::upstream));
  const auto close = std::get<rec::Close>(rec::decode(rec::encode(lines[6])).event);
  BOOST_TEST(close.reason == "client closed");
  BOOST_TEST(close.bytes_to_client == 18446744073709551615u);
  BOOST_TEST(std::get<rec::Open>(rec::decode(rec::encode(lines[0])).event).messages);
}

BOOST_AUTO_TEST_CASE(a_reason_that_is_not_utf8_is_still_written) {
  const std::string text = rec::encode({1, 0, rec::Close{"t", "bad \xff byte", false, 0, 0, 0, 0}});
  BOOST_TEST(std::get<rec::Close>(rec::decode(text).event).reason == "bad \xef\xbf\xbd byte");
}

BOOST_AUTO_TEST_CASE(bad_lines_say_why) {
  const std::pair<const char*, const char*> cases[] = {
      {"{not json", "not JSON"},
      {"[1, 2]", "not a JSON object"},
      {R"({"t": 0, "event": "end", "direction": "upstream"})", "missing \"channel\""},
      {R"({"channel": -1, "t": 0, "event": "truncated"})", "\"channel\" is not a non-negative"},
      {R"({"channel": 1, "t": -0.5, "event": "truncated"})", "\"t\" is not a non-negative number"},
      {R"({"channel": 1, "t": 0, "event": "wave"})", "unknown event \"wave\""},
      {R"({"channel": 1, "t": 0, "event": "data", "direction": "up", "data": ""})",
       "\"direction\" is \"up\""},
      {R"({"channel": 1, "t": 0, "event": "data", "direction": "upstream", "data": "Zg="})",
       "\"data\" is not valid base64"},
      {R"({"channel": 1, "t": 0, "event": "data", "direction": "upstream"})", "missing \"data\""},
      {R"({"channel": 1, "t": 0, "event": "connected", "upstream": 5})",
       "\"upstream\" is not a string"},
      {R"({"channel": 1, "t": 0, "event": "close", "time": "", "reason": "", "upstream_connected":
       true, "bytes_from_client": 1, "bytes_to_upstream": 1, "bytes_from_upstream": 1})",
       "missing \"bytes_to_client\""},
  };
  for (auto [text, why] : cases) {
    const std::string error = decode_error(text);
    BOOST_TEST(error.find(why) != std::string::npos, text << " -> " << error);
  }
}

BOOST_AUTO_TEST_CASE(read_lines_numbers_lines_and_skips_empty_ones) {
  std::istringstream good(rec::encode({1, 0, rec::Truncated{}}) + "\n" +
                          rec::encode({2, 0, rec::Truncated{}}));
  std::vector<std::pair<std::uint64_t, std::size_t>> seen;
  rec::read_lines(good, [&](rec::Line&& l, std::size_t n) {
    seen.emplace_back(l.channel, n);
    return true;
  });
  const std::vector<std::pair<std::uint64_t, std::size_t>> expected = {{1, 1}, {2, 3}};
  BOOST_TEST((seen == expected));

  std::istringstream bad(rec::encode({1, 0, rec::Truncated{}}) + "\n" + "{oops}\n");
  std::size_t calls = 0;
  try {
    rec::read_lines(bad, [&](rec::Line&&, std::size_t) { return ++calls != 0; });
    BOOST_FAIL("no error");
  } catch (const rec::FormatError& e) {
    BOOST_TEST(std::string(e.what()).starts_with("line 3: not JSON"), e.what());
    BOOST_TEST(!e.channel);
  }
  BOOST_TEST(calls == 1u);
}

BOOST_AUTO_TEST_CASE(read_lines_passes_bad_lines_with_their_channel_and_can_stop) {
  const std::string cut = rec::encode({12, 0.5, rec::Data{Direction::upstream, "abcdef"}});
  std::istringstream in(rec::encode({1, 0, rec::Truncated{}}) +
                        R"({"channel":7,"t":0,"event":"data","direction":"up","data":""})"
                        "\n" +
                        cut.substr(0, 20) + "\n" +  // {"channel":12,"t":0.
                        cut.substr(0, 12) + "\n" +  // {"channel":1 (cut in the number: no channel)
                        rec::encode({2, 0, rec::Truncated{}}) +
                        rec::encode({3, 0, rec::Truncated{}}));
  std::vector<std::pair<std::optional<std::uint64_t>, std::string>> bad;
  std::vector<std::uint64_t> good;
  rec::read_lines(
      in,
      [&](rec::Line&& l, std::size_t) {
        good.push_back(l.channel);
        return l.channel != 2;  // stops here: line 6 is never read
      },
      [&](const rec::FormatError& e) { bad.emplace_back(e.channel, e.what()); });
  BOOST_TEST((good == std::vector<std::uint64_t>{1, 2}));
  BOOST_REQUIRE(bad.size() == 3u);
  BOOST_TEST((bad[0].first == std::optional<std::uint64_t>(7)));
  BOOST_TEST(bad[0].second.starts_with("line 2: \"direction\""), bad[0].second);
  BOOST_TEST((bad[1].first == std::optional<std::uint64_t>(12)));
  BOOST_TEST(bad[1].second.starts_with("line 3: not JSON"), bad[1].second);
  BOOST_TEST(!bad[2].first);
}

BOOST_AUTO_TEST_CASE(seconds_are_rounded_to_microseconds) {
  BOOST_TEST(rec::seconds(1500ms) == 1.5);
  BOOST_TEST(rec::seconds(1234567891ns) == 1.234568);
  BOOST_TEST(rec::iso8601_utc(std::chrono::system_clock::time_point(1234567890123ms)) ==
             "2009-02-13T23:31:30.123Z");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(middleware, Fixture)

BOOST_AUTO_TEST_CASE(records_a_channel_as_it_happens) {
  const auto file = dir / "rec.jsonl";
  Chain c(types, chain(file.string()));
  {
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    h.advance(250ms);
    h.feed(Direction::upstream, std::string("GET /\0\xff", 7));
    BOOST_TEST(h.take(Direction::upstream) == std::string("GET /\0\xff", 7));  // unchanged
    h.advance(1s);
    h.feed(Direction::downstream, "200 OK");
    BOOST_TEST(h.take(Direction::downstream) == "200 OK");
    h.finish(Direction::upstream);
    BOOST_TEST(h.ended(Direction::upstream));
    h.advance(500ms);
    h.finish(Direction::downstream);
    // Written as it happens: everything but the close is there before the channel closes.
    BOOST_TEST(read_file(file).size() == 6u);
    h.shut("client closed");
  }
  const auto lines = read_file(file);
  BOOST_TEST_REQUIRE(lines.size() == 7u);
  for (const auto& l : lines) BOOST_TEST(l.channel == 1u);

  const auto& open = as<rec::Open>(lines[0]);
  BOOST_TEST(lines[0].t == 0.0);
  BOOST_TEST(open.listener == "test");
  BOOST_TEST(open.client == "10.0.0.1:40000");
  BOOST_TEST(open.upstream == "192.0.2.7:443");
  BOOST_TEST(!open.messages);
  BOOST_TEST(open.time.size() == std::string("2026-01-02T03:04:05.678Z").size());

  BOOST_TEST(as<rec::Connected>(lines[1]).upstream == "192.0.2.7:443");
  BOOST_TEST(lines[1].t == 0.0);
  BOOST_TEST(as<rec::Data>(lines[2]).bytes == std::string("GET /\0\xff", 7));
  BOOST_TEST((as<rec::Data>(lines[2]).direction == Direction::upstream));
  BOOST_TEST(lines[2].t == 0.25);
  BOOST_TEST(as<rec::Data>(lines[3]).bytes == "200 OK");
  BOOST_TEST((as<rec::Data>(lines[3]).direction == Direction::downstream));
  BOOST_TEST(lines[3].t == 1.25);
  BOOST_TEST((as<rec::End>(lines[4]).direction == Direction::upstream));
  BOOST_TEST((as<rec::End>(lines[5]).direction == Direction::downstream));
  BOOST_TEST(lines[5].t == 1.75);

  const auto& close = as<rec::Close>(lines[6]);
  BOOST_TEST(lines[6].t == 1.75);
  BOOST_TEST(close.reason == "client closed");
  BOOST_TEST(close.upstream_connected);
  BOOST_TEST(close.bytes_from_client == 7u);
  BOOST_TEST(close.bytes_to_upstream == 7u);
  BOOST_TEST(close.bytes_from_upstream == 6u);
  BOOST_TEST(close.bytes_to_client == 6u);
  // The close's wall time moved on from the open's by the channel's (fake) clock: 1.75 s.
  BOOST_TEST(close.time.substr(0, 17) >= open.time.substr(0, 17));
  const auto ms = [](const std::string& iso) {
    std::tm tm{};
    BOOST_TEST_REQUIRE(::strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    return ::timegm(&tm) * 1000LL + std::stoll(iso.substr(20, 3));
  };
  BOOST_TEST(ms(close.time) - ms(open.time) == 1750);
}

BOOST_AUTO_TEST_CASE(channels_of_every_thread_append_whole_lines_to_one_file) {
  const auto file = dir / "shared.jsonl";
  Chain c(types, chain(file.string()));
  constexpr int kThreads = 4, kChunks = 200;
  const std::string chunk = all_byte_values(3000);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&] {
      Harness h(c);
      for (int k = 0; k < kChunks; ++k) h.feed(Direction::upstream, chunk);
      h.shut("done");
    });
  for (auto& t : threads) t.join();
  const auto lines = read_file(file);  // throws on any torn line
  BOOST_TEST(lines.size() == std::size_t(kThreads) * (kChunks + 3));
  std::size_t data = 0;
  for (const auto& l : lines)
    if (auto* d = std::get_if<rec::Data>(&l.event)) {
      BOOST_TEST((d->bytes == chunk));
      ++data;
    }
  BOOST_TEST(data == std::size_t(kThreads) * kChunks);
}

BOOST_AUTO_TEST_CASE(a_folder_gets_one_file_per_channel) {
  const auto folder = dir / "new" / "recordings";  // created when the chain starts
  Chain c(types, chain(folder.string() + "/"));
  BOOST_TEST(std::filesystem::is_directory(folder));
  {
    // Same channel id and (most likely) the same millisecond: the second file gets "-2".
    Harness a(c), b(c);
    a.feed(Direction::upstream, "for a");
    b.feed(Direction::upstream, "for b");
    a.shut("a closed");
    b.shut("b closed");
  }
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(folder)) files.push_back(e.path());
  BOOST_TEST_REQUIRE(files.size() == 2u);
  std::set<std::string> payloads;
  for (const auto& f : files) {
    BOOST_TEST(f.filename().string().find("-ch1") != std::string::npos, f);
    BOOST_TEST(f.extension() == ".jsonl");
    const auto lines = read_file(f);
    BOOST_TEST_REQUIRE(lines.size() == 4u);  // open, connected, data, close
    BOOST_TEST(std::holds_alternative<rec::Open>(lines.front().event));
    BOOST_TEST(std::holds_alternative<rec::Close>(lines.back().event));
    payloads.insert(std::get<rec::Data>(lines[2].event).bytes + "/" +
                    std::get<rec::Close>(lines.back().event).reason);
  }
  const std::set<std::string> expected = {"for a/a closed", "for b/b closed"};
  BOOST_TEST((payloads == expected));

  // An existing folder is a folder without the trailing slash too.
  Chain again(types, chain(folder.string()));
  { Harness h(again); }
  BOOST_TEST(std::distance(std::filesystem::directory_iterator(folder),
                           std::filesystem::directory_iterator()) == 3);
}

BOOST_AUTO_TEST_CASE(max_bytes_cuts_the_data_not_the_channel) {
  const auto file = dir / "cut.jsonl";
  Chain c(types, chain(file.string(), {{"max_bytes", 10}}));
  {
    Harness h(c);
    h.feed(Direction::upstream, "123456");
    h.feed(Direction::downstream, "abcdef");
    h.feed(Direction::upstream, "more");
    BOOST_TEST(h.take(Direction::upstream) == "123456more");  // every byte still goes through
    BOOST_TEST(h.take(Direction::downstream) == "abcdef");
    h.finish(Direction::upstream);
    h.shut("client closed");
  }
  const auto lines = read_file(file);
  BOOST_TEST_REQUIRE(lines.size() == 7u);
  BOOST_TEST(as<rec::Data>(lines[2]).bytes == "123456");
  BOOST_TEST(as<rec::Data>(lines[3]).bytes == "abcd");
  BOOST_TEST(std::holds_alternative<rec::Truncated>(lines[4].event));
  BOOST_TEST(std::holds_alternative<rec::End>(lines[5].event));
  BOOST_TEST(as<rec::Close>(lines[6]).bytes_from_client == 10u);
}

BOOST_AUTO_TEST_CASE(max_bytes_reached_exactly_truncates_at_the_next_chunk) {
  const auto file = dir / "exact.jsonl";
  Chain c(types, chain(file.string(), {{"max_bytes", "4B"}}));
  {
    Harness h(c);
    h.feed(Direction::upstream, "1234");
    h.feed(Direction::upstream, "5");
    h.shut("x");
  }
  const auto lines = read_file(file);
  BOOST_TEST_REQUIRE(lines.size() == 5u);
  BOOST_TEST(as<rec::Data>(lines[2]).bytes == "1234");
  BOOST_TEST(std::holds_alternative<rec::Truncated>(lines[3].event));
}

BOOST_AUTO_TEST_CASE(a_write_error_is_logged_once_and_the_channel_goes_on) {
  Chain c(types, chain("/dev/full"));  // every write fails with ENOSPC
  Harness h(c);
  for (int i = 0; i < 3; ++i) {
    h.feed(Direction::upstream, "still flowing");
    BOOST_TEST(h.take(Direction::upstream) == "still flowing");
  }
  BOOST_TEST(!h.closed());
  h.shut("client closed");
  BOOST_TEST_REQUIRE(h.logs.size() == 1u);
  BOOST_TEST(h.logs[0].find("record: write failed: No space left on device") == 0u, h.logs[0]);

  // The next channel of the chain logs its failure at debug only: the harness keeps it anyway.
  Harness second(c);
  BOOST_TEST(second.logs.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_channel_rejected_before_record_still_gets_open_and_close) {
  const auto file = dir / "rejected.jsonl";
  json middlewares = json::array({{{"type", "reject"}}});
  middlewares.push_back(chain(file.string())[0]);
  Chain c(types, middlewares);
  { Harness h(c); }
  const auto lines = read_file(file);
  BOOST_TEST_REQUIRE(lines.size() == 2u);
  BOOST_TEST(std::holds_alternative<rec::Open>(lines[0].event));
  BOOST_TEST(as<rec::Close>(lines[1]).reason == "rejected by test");
  BOOST_TEST(!as<rec::Close>(lines[1]).upstream_connected);
}

BOOST_AUTO_TEST_CASE(after_a_layer_the_recording_says_messages) {
  const auto file = dir / "messages.jsonl";
  json middlewares = json::array({{{"type", "layer"}}});
  middlewares.push_back(chain(file.string())[0]);
  Chain c(types, middlewares);
  {
    Harness h(c);
    h.feed(Direction::upstream, "m");
  }
  const auto lines = read_file(file);
  BOOST_TEST_REQUIRE(lines.size() >= 1u);
  BOOST_TEST(as<rec::Open>(lines[0]).messages);
}

BOOST_AUTO_TEST_CASE(bad_options_name_their_json_path) {
  BOOST_TEST(config_error(json::array({{{"type", "record"}}})) ==
             "/middlewares/0/path: missing (required)");
  BOOST_TEST(config_error(chain("")).find("/middlewares/0/path: expected a file or folder") == 0u);
  BOOST_TEST(config_error(chain("/dev/null/x.jsonl")) ==
             "/middlewares/0/path: cannot open \"/dev/null/x.jsonl\" for appending: Not a "
             "directory");
  BOOST_TEST(config_error(chain("/dev/null/folder/"))
                 .find("/middlewares/0/path: cannot create the folder \"/dev/null/folder/\": Not a "
                       "directory") == 0u);
  BOOST_TEST(config_error(chain((dir / "f").string(), {{"max_bytes", "lots"}}))
                 .find("/middlewares/0/max_bytes: expected a size") == 0u);
  BOOST_TEST(config_error(chain((dir / "f").string(), {{"colour", 1}})) ==
             "/middlewares/0/colour: unknown key");
}

BOOST_AUTO_TEST_SUITE_END()
