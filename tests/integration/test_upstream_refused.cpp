// An upstream that refuses connections closes that channel at once (the client sees EOF or a
// reset, well before connect_timeout), is logged, and affects nothing else: the same listener
// takes the next client, another listener proxies as usual.
#define BOOST_TEST_MODULE upstream_refused
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <system_error>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// Connects to a listener whose upstream refuses; returns how the stream ended and how long it took.
// sluice accepts, fails to connect upstream and resets the client; that can all happen before
// the client's own connect() returns, which then reports the reset.
std::pair<End, double> refused_channel(std::uint16_t port) {
  const auto start = Clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  int error = 0;
  auto client = Socket::try_connect(port, error);
  if (!client) {
    if (error != ECONNRESET)
      throw std::system_error(error, std::generic_category(), "connect " + loopback(port));
    return {End::reset, seconds()};
  }
  client->set_timeout(10s);
  std::string got;
  const End end = client->recv_to_end(got);
  BOOST_TEST(got.empty());
  return {end, seconds()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(refused_upstream_closes_only_its_channel) {
  TempDir dir;
  auto echo = echo_server();
  const auto dead_upstream = free_port();  // nothing listens there
  const auto dead = free_port();
  const auto live = free_port();
  const auto config = write_json(
      dir.file("proxy.json"),
      {{"workers", 2},
       {"listeners",
        {{{"name", "dead"}, {"listen", loopback(dead)}, {"upstream", loopback(dead_upstream)}},
         {{"name", "live"}, {"listen", loopback(live)}, {"upstream", echo->address()}}}}});
  auto sluice = Sluice::run_config(config);

  for (int i = 0; i < 2; ++i) {
    BOOST_TEST_CONTEXT("client " << i << " of the refused listener") {
      const auto [end, seconds] = refused_channel(dead);
      BOOST_TEST((end == End::eof || end == End::reset), "stream ended with " << to_string(end));
      // connect_timeout is 5 s by default, but a refusal is immediate.
      BOOST_TEST(seconds < 2.0);
    }
  }
  BOOST_TEST(sluice->wait_for_log("connect failed", kWait, 2), "log:\n" << sluice->log());
  BOOST_TEST(sluice->running());

  Socket client = Socket::connect(live);
  BOOST_TEST(roundtrip(client, "still alive") == "still alive");
  client.shutdown_write();
  std::string rest;
  BOOST_TEST(std::string(to_string(client.recv_to_end(rest))) == "EOF");
  client.close();

  // The refused listener still accepts, and still closes promptly.
  const auto [end, seconds] = refused_channel(dead);
  BOOST_TEST((end == End::eof || end == End::reset));
  BOOST_TEST(seconds < 2.0);
  BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
}
