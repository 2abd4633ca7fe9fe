// Half-close: what one side sends before shutting down its write side reaches the other side
// before the FIN, and the other direction stays open until it finishes too. A reset (RST) right
// behind the last bytes ends the other side's stream too, once those bytes have reached it.
#define BOOST_TEST_MODULE half_close
#include <sys/socket.h>

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <fstream>
#include <future>
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

// sluice with one listener from `port` to `upstream`; `options` are more keys of the listener.
std::unique_ptr<Sluice> start(TempDir& dir, std::uint16_t port, const Server& upstream,
                              int workers = 2, json options = json::object()) {
  options["name"] = "half";
  options["listen"] = loopback(port);
  options["upstream"] = upstream.address();
  const auto config = write_json(dir.file("proxy.json"),
                                 {{"workers", workers}, {"listeners", json::array({options})}});
  return Sluice::run_config(config);
}

// The state letter of /proc/PID/stat ('T' once a SIGSTOP has taken effect).
char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

// Closing with SO_LINGER {1, 0} sends an RST instead of a FIN.
void set_reset_on_close(Socket& s) {
  const linger abort{1, 0};
  BOOST_REQUIRE(::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort) == 0);
}

// One side sends `tail` and resets its connection while sluice is stopped (SIGSTOP), so the
// bytes and the RST are both queued when sluice runs again and one readiness event reports
// them: a read that returns the last bytes must not take the socket for drained and park.
void reset_behind_last_bytes(bool from_client, bool splice) {
  BOOST_TEST_CONTEXT((from_client ? "client" : "upstream") << " resets, splice " << splice) {
    const std::string head = "hello";
    const std::string tail = random_bytes(100, 5);
    std::promise<void> go, done;
    Seen seen;
    Server upstream(
        [&](Socket& s) {
          if (from_client) {
            std::string got;
            const End end = s.recv_to_end(got, head.size() + tail.size() + 1);
            seen.record(end, got);
            return;
          }
          if (!s.send_all(head)) return;
          go.get_future().wait();
          seen.replied = s.send_all(tail);
          set_reset_on_close(s);  // the Server closes `s` on return
          done.set_value();
        },
        5s);
    TempDir dir;
    const auto port = free_port();
    auto sluice = start(dir, port, upstream, 1, {{"splice", splice}});
    const pid_t pid = sluice->process().pid();

    Socket client = Socket::connect(port, 5s);
    if (from_client) {
      BOOST_REQUIRE(client.send_all(head));
      // The upstream has the head: the channel is open and its client side drained.
      BOOST_REQUIRE(wait_until([&] { return upstream.accepted() == 1; }, 5s));
      std::this_thread::sleep_for(100ms);
    } else {
      BOOST_REQUIRE(client.recv_exact(head.size()) == head);
    }
    sluice->send_signal(SIGSTOP);
    BOOST_REQUIRE(wait_until([&] { return process_state(pid) == 'T'; }, 5s));
    if (from_client) {
      BOOST_REQUIRE(client.send_all(tail));
      set_reset_on_close(client);
      client.close();
    } else {
      go.set_value();
      BOOST_REQUIRE(done.get_future().wait_for(5s) == std::future_status::ready);
      BOOST_REQUIRE(upstream.wait_finished(1, 5s));
    }
    std::this_thread::sleep_for(50ms);  // loopback has delivered both by now
    sluice->send_signal(SIGCONT);

    if (from_client) {
      BOOST_REQUIRE_MESSAGE(upstream.wait_finished(1, 10s), sluice->log());
      std::lock_guard lock(seen.mutex);
      BOOST_TEST(seen.size == head.size() + tail.size());
      BOOST_TEST(seen.sha == sha256_hex(head + tail));
      BOOST_TEST((seen.end == End::reset || seen.end == End::eof), to_string(seen.end));
    } else {
      BOOST_TEST(seen.replied);
      std::string got;
      const End end = client.recv_to_end(got, tail.size() + 1);
      BOOST_TEST(got == tail);
      BOOST_TEST((end == End::reset || end == End::eof), to_string(end));
    }
    client.close();
    BOOST_TEST(upstream.errors().empty());
    BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
  }
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

BOOST_AUTO_TEST_CASE(client_reset_behind_its_last_bytes) {
  for (const bool splice : {false, true}) reset_behind_last_bytes(true, splice);
}

BOOST_AUTO_TEST_CASE(upstream_reset_behind_its_last_bytes) {
  for (const bool splice : {false, true}) reset_behind_last_bytes(false, splice);
}

// The RST comes while sluice reads nothing from the client: the upstream reads nothing yet, so
// the queue toward it is over high_watermark. Its edge is taken then, with no read waiting; once
// the upstream reads, sluice reads on to the RST instead of parking after the last bytes.
BOOST_AUTO_TEST_CASE(client_reset_while_its_reads_wait_for_the_upstream) {
  const std::string stream = random_bytes(64u << 20, 6);
  std::promise<void> go;
  Seen seen;
  Server upstream(
      [&](Socket& s) {
        go.get_future().wait();
        std::string got;
        const End end = s.recv_to_end(got, stream.size());
        seen.record(end, got);
        std::lock_guard lock(seen.mutex);
        seen.replied = got == stream.substr(0, got.size());  // a prefix, in order
      },
      5s);
  TempDir dir;
  const auto port = free_port();
  auto sluice = start(dir, port, upstream, 1, {{"splice", false}, {"high_watermark", "64KiB"}});
  Socket client = Socket::connect(port, 5s);
  // Sends until every buffer on the way is full and the send times out.
  client.set_timeout(500ms);
  BOOST_REQUIRE(!client.send_all(stream));
  set_reset_on_close(client);
  client.close();
  std::this_thread::sleep_for(100ms);  // sluice's worker takes the RST's edge
  go.set_value();
  BOOST_REQUIRE_MESSAGE(upstream.wait_finished(1, 10s), sluice->log());
  {
    std::lock_guard lock(seen.mutex);
    BOOST_TEST(seen.size > 0u);
    BOOST_TEST(seen.replied);
    BOOST_TEST((seen.end == End::reset || seen.end == End::eof), to_string(seen.end));
  }
  BOOST_TEST(upstream.errors().empty());
  BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
}
