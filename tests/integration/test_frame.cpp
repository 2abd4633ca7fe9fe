// frame end to end: length-prefixed messages split across reads reach the middlewares after frame
// whole (hexdump logs one message each way), are encoded again towards the upstream and the
// client, and a frame over max_frame or a stream ending inside a frame closes only its channel.
#define BOOST_TEST_MODULE frame
#include <boost/test/unit_test.hpp>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

std::string framed(const std::string& payload) {
  const auto n = static_cast<std::uint32_t>(payload.size());
  return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)} +
         payload;
}

struct Fixture {
  Fixture() : echo(echo_server()), port(free_port()) {
    const json chain = json::array(
        {{{"type", "frame"}, {"max_frame", "1KiB"}}, {{"type", "hexdump"}, {"max_bytes", 0}}});
    const auto config = write_json(
        dir.file("proxy.json"),
        {{"listeners",
          {{{"listen", loopback(port)}, {"upstream", echo->address()}, {"middlewares", chain}}}}});
    sluice = Sluice::run_config(config);
  }
  ~Fixture() {
    if (sluice) BOOST_CHECK_MESSAGE(sluice->stop() == 0, "sluice exit; log:\n" << sluice->log());
  }
  TempDir dir;
  std::unique_ptr<Server> echo;
  std::uint16_t port;
  std::unique_ptr<Sluice> sluice;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(frame_end_to_end, Fixture)

BOOST_AUTO_TEST_CASE(messages_split_across_reads_arrive_whole_and_reencoded) {
  Socket s = Socket::connect(port);
  const std::string stream = framed("first") + framed(std::string(1000, 'x')) + framed("");
  // Pieces that cut through a length field and through a payload, sent as separate reads.
  const std::size_t cuts[] = {0, 2, 7, 300, stream.size()};
  for (std::size_t i = 0; i + 1 < std::size(cuts); ++i) {
    BOOST_REQUIRE(s.send_all(stream.substr(cuts[i], cuts[i + 1] - cuts[i])));
    std::this_thread::sleep_for(100ms);  // separate reads, not synchronization
  }
  BOOST_TEST(s.recv_exact(stream.size()) == stream);
  s.shutdown_write();
  std::string rest;
  BOOST_TEST(std::string(to_string(s.recv_to_end(rest))) == "EOF");
  // Each message was seen whole, once each way (the echo's answer decoded at the server edge).
  BOOST_TEST(sluice->wait_for_log("downstream message 3 length 0"));
  const std::string log = sluice->log();
  for (const char* m : {"upstream message 1 length 5", "upstream message 2 length 1000",
                        "upstream message 3 length 0", "downstream message 1 length 5",
                        "downstream message 2 length 1000"})
    BOOST_TEST(log.find(m) != std::string::npos, m);
}

BOOST_AUTO_TEST_CASE(a_bad_frame_closes_only_its_channel) {
  Socket good = Socket::connect(port);
  BOOST_TEST(roundtrip(good, framed("before")) == framed("before"));

  Socket big = Socket::connect(port);
  BOOST_REQUIRE(big.send_all(framed(std::string(1025, 'y'))));
  std::string got;
  const End end = big.recv_to_end(got);
  BOOST_TEST((end == End::eof || end == End::reset), to_string(end));
  BOOST_TEST(got.empty());
  BOOST_TEST(sluice->wait_for_log("frame: the client sent a frame of 1025 bytes, over max_frame"));

  Socket partial = Socket::connect(port);
  BOOST_REQUIRE(partial.send_all(framed("abc").substr(0, 5)));
  partial.shutdown_write();
  got.clear();
  partial.recv_to_end(got);
  BOOST_TEST(got.empty());
  BOOST_TEST(
      sluice->wait_for_log("frame: the client ended inside a frame (1 of 3 bytes of payload)"));

  BOOST_TEST(roundtrip(good, framed("after")) == framed("after"));
}

BOOST_AUTO_TEST_SUITE_END()
