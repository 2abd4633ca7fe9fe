// rewrite end to end: regex rules per direction on JSON-ish traffic, with the fields split across
// reads (separate TCP segments, with pauses so sluice sees separate chunks), hold_timeout on a
// request/response exchange, and a bad regex reported by `sluice check`.
#define BOOST_TEST_MODULE rewrite
#include <boost/test/unit_test.hpp>

#include <mutex>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// Sends `pieces` with a pause between them, half-closes and reads the whole answer.
std::string send_pieces(std::uint16_t port, const std::vector<std::string>& pieces) {
  Socket s = Socket::connect(port);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (i) std::this_thread::sleep_for(200ms);  // separate reads, not synchronization
    if (!s.send_all(pieces[i])) throw std::runtime_error("send failed");
  }
  s.shutdown_write();
  std::string got;
  const End end = s.recv_to_end(got, 1 << 20);
  if (end != End::eof) throw std::runtime_error(std::string("stream ended with ") + to_string(end));
  return got;
}

// An upstream that reads the request to EOF, keeps it, then answers `reply` in `pieces` (with
// pauses, so the reply too reaches sluice in several reads) and closes.
struct Recorder {
  explicit Recorder(std::vector<std::string> reply)
      : server([this, reply](Socket& s) {
          std::string got;
          s.recv_to_end(got, 1 << 20);
          {
            std::lock_guard lock(mutex);
            requests.push_back(got);
          }
          for (std::size_t i = 0; i < reply.size(); ++i) {
            if (i) std::this_thread::sleep_for(200ms);
            s.send_all(reply[i]);
          }
        }) {}
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex);
    return requests;
  }
  std::mutex mutex;
  std::vector<std::string> requests;
  Server server;  // last: its handlers use the members above
};

// Upstream: the token is redacted. Downstream: the user name is upper-cased. hold_timeout is long
// by default so that the 200 ms pauses between pieces never flush a match in progress.
json rules(const char* hold_timeout = "10s") {
  return json::array({{{"type", "rewrite"},
                       {"hold_timeout", hold_timeout},
                       {"rules",
                        {{{"pattern", R"("token":\s*"[^"]*")"},
                          {"replacement", R"("token":"<redacted>")"},
                          {"direction", "upstream"}},
                         {{"pattern", R"re("user":"(\w+)")re"},
                          {"replacement", R"("user":"\U$1\E")"},
                          {"direction", "downstream"}}}}}});
}

json listener(const char* name, std::uint16_t port, const std::string& upstream, json chain) {
  return {
      {"name", name}, {"listen", loopback(port)}, {"upstream", upstream}, {"middlewares", chain}};
}

struct Fixture {
  Fixture()
      : echo(echo_server()),
        recorder({R"({"user":"a)", R"(nn","token":"t0"})"}),
        to_echo(free_port()),
        to_recorder(free_port()),
        short_hold(free_port()) {
    const auto config =
        write_json(dir.file("proxy.json"),
                   {{"workers", 2},
                    {"listeners",
                     {listener("to-echo", to_echo, echo->address(), rules()),
                      listener("to-recorder", to_recorder, recorder.server.address(), rules()),
                      listener("short-hold", short_hold, echo->address(), rules("100ms"))}}});
    sluice = Sluice::run_config(config);
  }
  ~Fixture() {
    if (sluice) BOOST_CHECK_MESSAGE(sluice->stop() == 0, "sluice exit; log:\n" << sluice->log());
  }
  TempDir dir;
  std::unique_ptr<Server> echo;
  Recorder recorder;
  std::uint16_t to_echo, to_recorder, short_hold;
  std::unique_ptr<Sluice> sluice;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(rewrite_end_to_end, Fixture)

// Through the echo, both rules apply: the token on the way up, the user on the way back.
BOOST_AUTO_TEST_CASE(both_directions_with_split_writes) {
  const std::string want = R"({"user":"ANN","token":"<redacted>"})";
  BOOST_TEST(send_pieces(to_echo, {R"({"user":"ann","token":"s3cr3t"})"}) == want);
  BOOST_TEST(send_pieces(to_echo, {R"({"us)", R"(er":"ann","tok)", R"(en": "s3c)", R"(r3t"})"}) ==
             want);
  // The first 12 bytes one read at a time, then the rest.
  const std::string whole = R"({"user":"ann","token":"s3cr3t"})";
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < 12; ++i) pieces.push_back(whole.substr(i, 1));
  pieces.push_back(whole.substr(12));
  BOOST_TEST(send_pieces(to_echo, pieces) == want);
  // No match: the bytes go through unchanged, including one that ends in a possible start.
  BOOST_TEST(send_pieces(to_echo, {"plain text", R"( "tok)"}) == R"(plain text "tok)");
}

// A scripted upstream shows each direction on its own.
BOOST_AUTO_TEST_CASE(each_rule_in_its_own_direction) {
  BOOST_TEST(send_pieces(to_recorder, {R"({"user":"bob","tok)", R"(en":"x"})"}) ==
             R"({"user":"ANN","token":"t0"})");
  BOOST_REQUIRE(recorder.server.wait_finished(1));
  BOOST_TEST(recorder.seen() == std::vector<std::string>{R"({"user":"bob","token":"<redacted>"})"},
             boost::test_tools::per_element());
}

// A peer that waits for an answer gets the held bytes after hold_timeout.
BOOST_AUTO_TEST_CASE(held_bytes_flush_after_hold_timeout) {
  Socket s = Socket::connect(short_hold);
  s.set_timeout(10s);
  BOOST_TEST(roundtrip(s, R"({"token":"ab)") == R"({"token":"ab)");  // back through the timeout
  BOOST_TEST(roundtrip(s, R"(c"})") == R"(c"})");  // too late to complete the match
  const std::string whole = R"({"token":"xyz","user":"eve"})";
  BOOST_REQUIRE(s.send_all(whole));
  const std::string want = R"({"token":"<redacted>","user":"EVE"})";
  BOOST_TEST(s.recv_exact(want.size()) == want);
  s.shutdown_write();
  std::string rest;
  BOOST_TEST(std::string(to_string(s.recv_to_end(rest))) == "EOF");
  BOOST_TEST(rest.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(a_bad_regex_is_a_config_error_with_its_path) {
  TempDir dir;
  const auto config =
      write_json(dir.file("bad.json"),
                 {{"listeners",
                   {listener("bad", free_port(), "127.0.0.1:9",
                             json::array({{{"type", "rewrite"},
                                           {"rules",
                                            {{{"pattern", "ok"}, {"replacement", ""}},
                                             {{"pattern", "a(b"}, {"replacement", ""}}}}}}))}}});
  const CommandResult r = run_sluice({"check", "-c", config.string()});
  BOOST_TEST(r.exit_code == 2, r.output);
  BOOST_TEST(r.output.find("/listeners/0/middlewares/0/rules/1/pattern: invalid regular "
                           "expression: Unmatched marking parenthesis") != std::string::npos,
             r.output);
}
