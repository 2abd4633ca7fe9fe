// What a channel holds while it lives, and that it goes away: small reads towards a stalled
// client stay within the watermark in memory, and a channel closed while opening does not linger.
#define BOOST_TEST_MODULE lifetime
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/test/unit_test.hpp>
#include <csignal>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

BOOST_AUTO_TEST_CASE(small_reads_towards_a_stalled_client_stay_bounded_in_memory) {
  TempDir dir;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> sent{0};
  // 100-byte messages with pauses, so that sluice reads them one by one: each read is a small
  // chunk, and a queue that kept one 64 KiB buffer per chunk would reach hundreds of MiB.
  Server upstream([&](Socket& s) {
    int one = 1;
    ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s.set_timeout(1s);
    const std::string message(100, 'm');
    const auto until = Clock::now() + 10s;
    while (!stop && Clock::now() < until) {
      if (!s.send_all(message)) break;  // blocked for 1 s: sluice stopped reading
      sent += message.size();
      std::this_thread::sleep_for(std::chrono::microseconds(30));
    }
  });
  const auto port = free_port();
  const auto config =
      write_json(dir.file("proxy.json"),
                 {{"workers", 1},
                  {"listeners", {{{"listen", loopback(port)}, {"upstream", upstream.address()}}}}});
  auto sluice = Sluice::run_config(config);
  const long base = sluice->rss_kib();

  // A client that does not read, with a small receive buffer so that the bytes pile up in
  // sluice rather than in the kernel.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  Socket client(fd);

  long peak = 0;
  const auto until = Clock::now() + 8s;
  while (Clock::now() < until && upstream.finished() == 0) {
    peak = std::max(peak, sluice->rss_kib());
    std::this_thread::sleep_for(50ms);
  }
  stop = true;
  // The queue holds at most ~1 MiB (high_watermark) plus one buffer; one 64 KiB buffer per small
  // read instead measured 43 MiB here. ASan's allocator and quarantine need more room.
  const long limit_kib = kSanitized ? 200 * 1024 : 16 * 1024;
  BOOST_TEST_MESSAGE("sent " << sent.load() << " bytes; sluice RSS " << base << " -> " << peak
                             << " KiB");
  // Enough must have been sent for the queue to reach its high watermark (1 MiB) past what
  // the kernel buffers hold, or the bound proves nothing.
  BOOST_TEST(sent.load() > std::size_t(2) << 20, "only " << sent.load() << " bytes sent");
  BOOST_TEST(peak - base < limit_kib, "sluice RSS grew by " << peak - base << " KiB");
  client.close();
  BOOST_TEST(sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(a_channel_closed_while_opening_does_not_hold_up_shutdown) {
  TempDir dir;
  const auto port = free_port();
  // No upstream, and hexdump does not pick one: every channel closes with "no upstream".
  const auto config = write_json(
      dir.file("none.json"),
      {{"workers", 1},
       {"drain_timeout", "30s"},
       {"listeners", {{{"listen", loopback(port)}, {"middlewares", {{{"type", "hexdump"}}}}}}}});
  auto sluice = Sluice::run_config(config);
  for (int i = 0; i < 3; ++i) {
    Socket client = Socket::connect(port);
    std::string got;
    const End end = client.recv_to_end(got);
    BOOST_TEST((end == End::eof || end == End::reset), to_string(end));
  }
  BOOST_TEST(sluice->wait_for_log("no upstream", kWait, 3), sluice->log());
  const auto start = Clock::now();
  sluice->send_signal(SIGTERM);
  BOOST_TEST(sluice->wait_exit(kWait).value_or(-1) == 0);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Nothing is open, so there is nothing to drain: not the 30 s drain_timeout.
  BOOST_TEST(seconds < (kSanitized ? 10.0 : 3.0), "exit took " << seconds << " s");
}
