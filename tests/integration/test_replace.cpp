// replace end to end: matches split across reads (separate TCP segments, with pauses so sluice
// sees separate chunks), and the "direction" option through real sockets.
#define BOOST_TEST_MODULE replace
#include <boost/test/unit_test.hpp>

#include <mutex>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// Sends `pieces` with a pause between them, half-closes and reads the whole answer.
std::string exchange(std::uint16_t port, const std::vector<std::string>& pieces) {
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

// An upstream that reads the request to EOF, keeps it, then answers `reply` and closes.
struct Recorder {
  explicit Recorder(std::string reply)
      : server([this, reply](Socket& s) {
          std::string got;
          s.recv_to_end(got, 1 << 20);
          {
            std::lock_guard lock(mutex);
            requests.push_back(got);
          }
          s.send_all(reply);
        }) {}
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex);
    return requests;
  }
  std::mutex mutex;
  std::vector<std::string> requests;
  Server server;  // last: its handlers use the members above
};

// hold_timeout: how long replace holds the start of a possible match waiting for the next chunk.
// Long here, so the 200 ms pauses between pieces never flush a match in progress.
json replace(const char* direction, const char* hold_timeout = "10s") {
  json m = {
      {"type", "replace"}, {"from", "needle"}, {"to", "NEEDLE!"}, {"hold_timeout", hold_timeout}};
  if (direction) m["direction"] = direction;
  return json::array({m});
}

json listener(const char* name, std::uint16_t port, const std::string& upstream, json chain) {
  return {
      {"name", name}, {"listen", loopback(port)}, {"upstream", upstream}, {"middlewares", chain}};
}

struct Fixture {
  Fixture()
      : echo(echo_server()),
        up_recorder("needle back needle"),
        down_recorder("needle back needle"),
        both(free_port()),
        up_echo(free_port()),
        up_scripted(free_port()),
        down_scripted(free_port()),
        short_hold(free_port()) {
    const auto config = write_json(
        dir.file("proxy.json"),
        {{"workers", 2},
         {"listeners",
          {listener("both", both, echo->address(), replace(nullptr)),
           listener("up-echo", up_echo, echo->address(), replace("upstream")),
           listener("up-scripted", up_scripted, up_recorder.server.address(), replace("upstream")),
           listener("down-scripted", down_scripted, down_recorder.server.address(),
                    replace("downstream")),
           listener("short-hold", short_hold, echo->address(), replace(nullptr, "100ms"))}}});
    sluice = Sluice::run_config(config);
  }
  ~Fixture() {
    if (sluice) BOOST_CHECK_MESSAGE(sluice->stop() == 0, "sluice exit; log:\n" << sluice->log());
  }
  TempDir dir;
  std::unique_ptr<Server> echo;
  Recorder up_recorder, down_recorder;
  std::uint16_t both, up_echo, up_scripted, down_scripted, short_hold;
  std::unique_ptr<Sluice> sluice;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(replace_end_to_end, Fixture)

BOOST_AUTO_TEST_CASE(match_split_across_reads) {
  BOOST_TEST(exchange(both, {"xxnee", "dlexx"}) == "xxNEEDLE!xx");
  BOOST_TEST(exchange(both, {"n", "e", "e", "d", "l", "e"}) == "NEEDLE!");
  BOOST_TEST(exchange(both, {"needl", "e needle nee", "dle"}) == "NEEDLE! NEEDLE! NEEDLE!");
  BOOST_TEST(exchange(both, {"nneedle", "needneedle", "nee"}) == "nNEEDLE!needNEEDLE!nee");
  // A stream that ends inside a possible match: the held bytes go out unchanged before the FIN.
  BOOST_TEST(exchange(both, {"abc", "needl"}) == "abcneedl");
  BOOST_TEST(exchange(both, {"no match here"}) == "no match here");
}

// A peer that waits for an answer must get the held bytes: after hold_timeout without a chunk
// that completes the match, they go out unchanged.
BOOST_AUTO_TEST_CASE(held_bytes_flush_after_hold_timeout) {
  Socket s = Socket::connect(short_hold);
  s.set_timeout(10s);
  BOOST_TEST(roundtrip(s, "xxnee") == "xxnee");  // "nee" comes back only through the timeout
  BOOST_TEST(roundtrip(s, "dle") == "dle");      // too late to complete a match
  BOOST_REQUIRE(s.send_all("a needle b"));
  BOOST_TEST(s.recv_exact(11) == "a NEEDLE! b");
  s.shutdown_write();
  std::string rest;
  BOOST_TEST(std::string(to_string(s.recv_to_end(rest))) == "EOF");
  BOOST_TEST(rest.empty());
}

BOOST_AUTO_TEST_CASE(direction_upstream) {
  // Through the echo, the client sees what the upstream got: replaced on the way up.
  BOOST_TEST(exchange(up_echo, {"xxnee", "dlexx"}) == "xxNEEDLE!xx");
  // A scripted upstream shows each direction on its own: up replaced, down untouched.
  BOOST_TEST(exchange(up_scripted, {"a nee", "dle b"}) == "needle back needle");
  BOOST_REQUIRE(up_recorder.server.wait_finished(1));
  BOOST_TEST(up_recorder.seen() == std::vector<std::string>{"a NEEDLE! b"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(direction_downstream) {
  BOOST_TEST(exchange(down_scripted, {"a nee", "dle b"}) == "NEEDLE! back NEEDLE!");
  BOOST_REQUIRE(down_recorder.server.wait_finished(1));
  BOOST_TEST(down_recorder.seen() == std::vector<std::string>{"a needle b"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
