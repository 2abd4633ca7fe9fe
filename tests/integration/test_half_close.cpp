// Half-close: what one side sends before shutting down its write side reaches the other side
// before the FIN, and the other direction stays open until it finishes too.
#define BOOST_TEST_MODULE half_close
#include <boost/test/unit_test.hpp>

#include <mutex>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

constexpr std::size_t kBytes = 1u << 20;

// What the scripted upstream saw, read by the test after the handler finished.
struct Seen {
  std::mutex mutex;
  std::string sha;
  std::size_t size = 0;
  End end = End::data;
  bool replied = false;

  // What the upstream received, and how its stream ended.
  void record(End how, const std::string& got) {
    std::lock_guard lock(mutex);
    end = how;
    size = got.size();
    sha = sha256_hex(got);
  }
};

std::unique_ptr<Sluice> start(TempDir& dir, std::uint16_t port, const Server& upstream) {
  const auto config = write_json(
      dir.file("proxy.json"),
      {{"workers", 2},
       {"listeners",
        {{{"name", "half"}, {"listen", loopback(port)}, {"upstream", upstream.address()}}}}});
  return Sluice::run_config(config);
}

}  // namespace

// The client finishes first; the upstream answers only after the client's FIN.
BOOST_AUTO_TEST_CASE(client_half_closes_first) {
  const std::string request = random_bytes(kBytes, 1);
  const std::string reply = random_bytes(kBytes, 2);
  Seen seen;
  Server upstream([&](Socket& s) {
    std::string got;
    const End end = s.recv_to_end(got, 2 * kBytes);
    seen.record(end, got);
    if (end != End::eof) return;
    seen.replied = s.send_all(reply);
    // Returning closes the connection: the reply is followed by FIN.
  });
  TempDir dir;
  const auto port = free_port();
  auto sluice = start(dir, port, upstream);

  Socket client = Socket::connect(port);
  BOOST_REQUIRE(client.send_all(request));
  client.shutdown_write();
  std::string got;
  const End end = client.recv_to_end(got, 2 * kBytes);
  BOOST_TEST(std::string(to_string(end)) == "EOF");
  BOOST_TEST(got.size() == kBytes);
  BOOST_TEST(sha256_hex(got) == sha256_hex(reply));

  BOOST_REQUIRE(upstream.wait_finished(1));
  {
    std::lock_guard lock(seen.mutex);
    BOOST_TEST(std::string(to_string(seen.end)) == "EOF");
    BOOST_TEST(seen.size == kBytes);
    BOOST_TEST(seen.sha == sha256_hex(request));
    BOOST_TEST(seen.replied);
  }
  BOOST_TEST(upstream.errors().empty());
  client.close();
  BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
}

// The upstream finishes first (sends, then FIN); the client answers after reading to EOF.
BOOST_AUTO_TEST_CASE(upstream_half_closes_first) {
  const std::string greeting = random_bytes(kBytes, 3);
  const std::string answer = random_bytes(kBytes, 4);
  Seen seen;
  Server upstream([&](Socket& s) {
    if (!s.send_all(greeting)) return;
    s.shutdown_write();
    std::string got;
    const End end = s.recv_to_end(got, 2 * kBytes);
    seen.record(end, got);
  });
  TempDir dir;
  const auto port = free_port();
  auto sluice = start(dir, port, upstream);

  Socket client = Socket::connect(port);
  std::string got;
  const End end = client.recv_to_end(got, 2 * kBytes);
  BOOST_TEST(std::string(to_string(end)) == "EOF");
  BOOST_TEST(got.size() == kBytes);
  BOOST_TEST(sha256_hex(got) == sha256_hex(greeting));
  // The channel's other direction is still open: the answer goes through after the FIN.
  BOOST_REQUIRE(client.send_all(answer));
  client.shutdown_write();

  BOOST_REQUIRE(upstream.wait_finished(1));
  {
    std::lock_guard lock(seen.mutex);
    BOOST_TEST(std::string(to_string(seen.end)) == "EOF");
    BOOST_TEST(seen.size == kBytes);
    BOOST_TEST(seen.sha == sha256_hex(answer));
  }
  BOOST_TEST(upstream.errors().empty());
  client.close();
  BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
}
