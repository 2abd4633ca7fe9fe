// Isolation: a middleware that throws closes its own channel, with the exception's message in
// the log; channels of other listeners keep exchanging data before, during and after.
// The "faulty" middleware comes from the test plugins (tests/plugins, SLUICE_TEST_PLUGIN_DIR):
// {"throw_on_chunk": N} throws std::runtime_error("faulty: chunk N") on the N-th on_data call of
// a channel, counting both directions.
#define BOOST_TEST_MODULE faulty_middleware
#include <boost/test/unit_test.hpp>

#include <atomic>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

constexpr std::size_t kNormalChannels = 8;

// One echo round on every normal channel with a payload unique to (channel, round).
void round_on(std::vector<Socket>& channels, int round) {
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const std::string payload = "round " + std::to_string(round) + " channel " + std::to_string(i) +
                                " " + random_bytes(1000 + 97 * i, round * 100 + i);
    BOOST_REQUIRE_MESSAGE(roundtrip(channels[i], payload) == payload,
                          "channel " << i << " round " << round);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(throwing_middleware_closes_only_its_channel) {
  const std::filesystem::path plugins = test_plugin_dir();
  BOOST_REQUIRE_MESSAGE(
      !plugins.empty() && std::filesystem::is_directory(plugins),
      "the test plugins are not built (SLUICE_TEST_PLUGIN_DIR \"" << plugins.string() << "\")");
  TempDir dir;
  auto echo = echo_server();
  const auto normal = free_port();
  const auto faulty = free_port();
  const auto config = write_json(
      dir.file("proxy.json"),
      {{"workers", 2},
       {"plugin_dirs", {plugins.string()}},
       {"listeners",
        {{{"name", "normal"}, {"listen", loopback(normal)}, {"upstream", echo->address()}},
         {{"name", "faulty"},
          {"listen", loopback(faulty)},
          {"upstream", echo->address()},
          {"middlewares", {{{"type", "faulty"}, {"throw_on_chunk", 3}}}}}}}});
  auto sluice = Sluice::run_config(config);

  std::vector<Socket> channels;
  for (std::size_t i = 0; i < kNormalChannels; ++i) channels.push_back(Socket::connect(normal));
  round_on(channels, 0);  // before

  // The faulty channel: small chunks with pauses, so each is a read (an on_data) of its own, and
  // each waits for its echo before the next is sent.
  std::atomic<bool> faulty_done{false};
  int closed_after = 0;
  std::string faulty_end = "none";
  std::string faulty_error;
  std::thread faulty_client([&] {
    try {
      Socket s = Socket::connect(faulty);
      s.set_timeout(10s);
      for (int chunk = 1; chunk <= 6 && closed_after == 0; ++chunk) {
        std::this_thread::sleep_for(100ms);  // separate reads, not synchronization
        const std::string payload = "chunk " + std::to_string(chunk);
        if (!s.send_all(payload)) {
          closed_after = chunk;
          faulty_end = "send failed";
          break;
        }
        End end = End::data;
        const std::string got = s.recv_exact(payload.size(), &end);
        if (got.size() < payload.size()) {
          closed_after = chunk;
          faulty_end = to_string(end);
        } else if (got != payload) {
          faulty_error = "chunk " + std::to_string(chunk) + " came back as \"" + got + "\"";
          break;
        }
      }
    } catch (const std::exception& e) {
      faulty_error = e.what();
    }
    faulty_done = true;
  });

  int round = 1;
  while (!faulty_done && round < 1000) round_on(channels, round++);  // during
  faulty_client.join();
  BOOST_TEST_MESSAGE(round - 1 << " rounds on the normal channels while the faulty one ran");
  BOOST_TEST(faulty_error == "");
  // Both directions count: chunk 1 up (call 1), its echo down (call 2), chunk 2 up (call 3).
  BOOST_TEST(closed_after == 2, "the faulty channel was closed after chunk " << closed_after);
  // A throw loses the chunk: the client gets a reset, never a clean EOF on a cut stream.
  BOOST_TEST((faulty_end == "reset" || faulty_end == "send failed"), faulty_end);
  BOOST_TEST(sluice->wait_for_log("middleware faulty threw in on_data: faulty: chunk 3"),
             "log:\n"
                 << sluice->log());

  for (int i = 0; i < 3; ++i) round_on(channels, round++);  // after
  // A new channel on either listener works: the process and the listeners go on.
  Socket late = Socket::connect(normal);
  BOOST_TEST(roundtrip(late, "late") == "late");
  channels.push_back(std::move(late));
  Socket again = Socket::connect(faulty);  // its calls 1 and 2 do not throw
  BOOST_TEST(roundtrip(again, "again") == "again");
  channels.push_back(std::move(again));
  for (auto& c : channels) {
    c.shutdown_write();
    std::string rest;
    BOOST_TEST(std::string(to_string(c.recv_to_end(rest))) == "EOF");
    BOOST_TEST(rest.empty());
  }
  channels.clear();
  BOOST_TEST(sluice->running());
  BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
}
