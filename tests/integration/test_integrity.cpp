// Byte integrity under concurrency: 16 channels at once, each sending 8 MiB of random bytes
// through sluice to an echo upstream while reading the echo back; what comes back must be
// exactly what was sent (SHA-256), with an empty chain and with a pass-through chain.
#define BOOST_TEST_MODULE integrity
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstring>
#include <thread>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

constexpr std::size_t kChannels = 16;
constexpr std::size_t kBytes = 8u << 20;

void run_all_channels(std::uint16_t port) {
  std::vector<EchoTransfer> results(kChannels);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kChannels; ++i)
    threads.emplace_back([&, i] { results[i] = echo_transfer(port, kBytes, 1000 + i); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < kChannels; ++i)
    BOOST_TEST(echo_problem(results[i], kBytes) == "", "channel " << i);
}

json listener(std::uint16_t port, const Server& upstream, json middlewares) {
  return {{"name", "integrity"},
          {"listen", loopback(port)},
          {"upstream", upstream.address()},
          {"middlewares", std::move(middlewares)}};
}

}  // namespace

BOOST_AUTO_TEST_CASE(empty_chain) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  const auto config =
      write_json(dir.file("proxy.json"),
                 {{"workers", 2}, {"listeners", {listener(port, *echo, json::array())}}});
  auto sluice = Sluice::run_config(config);
  run_all_channels(port);
  BOOST_TEST(echo->accepted() == kChannels);
  BOOST_TEST(echo->errors().empty());
  BOOST_TEST(sluice->stop() == 0, "sluice exit status; log:\n" << sluice->log());
}

BOOST_AUTO_TEST_CASE(pass_through_chain_with_access_log) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  const auto access_log = dir.file("access.log");
  const json chain = {
      {{"type", "hexdump"}, {"max_bytes", 0}},
      {{"type", "replace"}, {"from", "NEVER-MATCHES-xyz"}, {"to", "q"}},
      {{"type", "access-log"}, {"path", access_log.string()}},
  };
  const auto config = write_json(dir.file("proxy.json"),
                                 {{"workers", 2}, {"listeners", {listener(port, *echo, chain)}}});
  // hexdump logs one line per chunk at info: keep the log small. "sluice ready:" is an info
  // line too, so readiness is the listening socket instead (a probe connection would be a
  // channel, and an access-log line).
  Sluice sluice({"run", "-c", config.string(), "--log-level", "warn"});
  BOOST_REQUIRE_MESSAGE(
      wait_until([&] { return port_listening(port) || !sluice.running(); }, kWait) &&
          sluice.running(),
      "sluice is not listening; log:\n"
          << sluice.log());
  run_all_channels(port);

  // Each line is written as its channel closes, just after the client saw EOF.
  BOOST_TEST(wait_until([&] { return read_lines(access_log).size() >= kChannels; }, kWait));
  const auto lines = read_lines(access_log);
  BOOST_TEST(lines.size() == kChannels);
  for (const auto& line : lines) {
    BOOST_TEST_CONTEXT("access log line " << line) {
      const json j = json::parse(line, nullptr, false);
      BOOST_REQUIRE(j.is_object());
      BOOST_TEST(j.value("listener", "") == "integrity");
      BOOST_TEST(j.value("bytes_from_client", 0ull) == kBytes);
      BOOST_TEST(j.value("bytes_to_upstream", 0ull) == kBytes);
      BOOST_TEST(j.value("bytes_from_upstream", 0ull) == kBytes);
      BOOST_TEST(j.value("bytes_to_client", 0ull) == kBytes);
      BOOST_TEST(j.value("reason", "") == "client closed");
    }
  }
  BOOST_TEST(sluice.stop() == 0, "sluice exit status; log:\n" << sluice.log());
}
