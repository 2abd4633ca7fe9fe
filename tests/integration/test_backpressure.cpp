// Backpressure: an upstream that sends 512 MiB to a client that does not read for ~3 s. sluice
// must stop reading the upstream once its queue towards the client is full, so its memory stays
// bounded and the upstream's sends block; then the client reads everything, every byte checked.
// Both data paths: spliced through a pipe, and copied (where the first bytes the client's socket
// refuses move from the worker's scratch buffer into the queue).
#define BOOST_TEST_MODULE backpressure
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

constexpr std::uint64_t kTotal = 512ull << 20;
constexpr std::uint64_t kSeed = 77;

#ifdef SLUICE_SANITIZED
// Under ASan+UBSan the RSS is not sluice's own use: ASan maps shadow memory (1 byte per 8 touched),
// pads every allocation with redzones and keeps freed blocks in a quarantine (256 MiB by default)
// before reuse. The bound then only has to tell a bounded proxy from one that buffers the stream
// (which would be past 512 MiB); the upstream's blocked sends below check backpressure directly.
constexpr long kMaxRssKib = 400 * 1024;
#else
constexpr long kMaxRssKib = 64 * 1024;
#endif

// Kernel socket buffers on the path (upstream send, sluice receive and send, client receive) may
// hold some tens of MiB with autotuning; anything near the total means sluice kept reading.
constexpr std::uint64_t kMaxSentWhileStalled = 160ull << 20;

}  // namespace

BOOST_DATA_TEST_CASE(slow_reader_bounded_memory, boost::unit_test::data::make({true, false}),
                     splice) {
  const auto test_start = Clock::now();
  std::atomic<std::uint64_t> upstream_sent{0};
  std::atomic<bool> upstream_done{false};
  Server upstream(
      [&](Socket& s) {
        std::string block(256 * 1024, '\0');
        for (std::uint64_t off = 0; off < kTotal;) {
          const std::size_t n =
              static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), kTotal - off));
          pattern_fill(kSeed, off, block.data(), n);
          if (!s.send_all(std::string_view(block.data(), n))) return;
          off += n;
          upstream_sent = off;
        }
        upstream_done = true;
      },
      120s);

  TempDir dir;
  const auto port = free_port();
  const auto config = write_json(dir.file("proxy.json"), {{"workers", 2},
                                                          {"listeners",
                                                           {{{"name", "slow"},
                                                             {"listen", loopback(port)},
                                                             {"upstream", upstream.address()},
                                                             {"splice", splice}}}}});
  auto sluice = Sluice::run_config(config);
  const long rss_at_start = sluice->rss_kib();
  BOOST_TEST_MESSAGE("sluice RSS at start: " << rss_at_start << " KiB");

  Socket client = Socket::connect(port);
  client.set_timeout(60s);
  BOOST_REQUIRE(wait_until([&] { return upstream.accepted() == 1; }, kWait));

  // The stall: the client reads nothing for 3 s while the upstream pushes as fast as it can.
  long max_rss_stalled = 0;
  const auto stall_end = Clock::now() + 3s;
  while (Clock::now() < stall_end) {
    max_rss_stalled = std::max(max_rss_stalled, sluice->rss_kib());
    std::this_thread::sleep_for(50ms);
  }
  const std::uint64_t sent_while_stalled = upstream_sent.load();
  BOOST_TEST_MESSAGE("stalled 3 s: upstream sent " << sent_while_stalled / 1024
                                                   << " KiB, sluice max RSS " << max_rss_stalled
                                                   << " KiB");
  BOOST_TEST(max_rss_stalled > 0);
  BOOST_TEST(max_rss_stalled < kMaxRssKib);
  BOOST_TEST(sent_while_stalled < kMaxSentWhileStalled);
  BOOST_TEST(!upstream_done.load());

  // Keep sampling while the client drains the stream.
  std::atomic<bool> reading{true};
  std::atomic<long> max_rss_reading{0};
  std::thread sampler([&] {
    while (reading) {
      max_rss_reading = std::max(max_rss_reading.load(), sluice->rss_kib());
      std::this_thread::sleep_for(50ms);
    }
  });
  std::uint64_t received = 0;
  std::size_t mismatch_at = std::string::npos;
  std::string buf(256 * 1024, '\0');
  End end = End::data;
  for (;;) {
    std::size_t n = 0;
    end = client.recv_some(buf.data(), buf.size(), n);
    if (end != End::data) break;
    const std::size_t bad = pattern_mismatch(kSeed, received, std::string_view(buf.data(), n));
    if (bad != std::string::npos) {
      mismatch_at = static_cast<std::size_t>(received + bad);
      break;
    }
    received += n;
  }
  reading = false;
  sampler.join();

  BOOST_TEST(mismatch_at == std::string::npos, "first wrong byte at offset " << mismatch_at);
  BOOST_TEST(std::string(to_string(end)) == "EOF");
  BOOST_TEST(received == kTotal);
  BOOST_TEST(upstream_done.load());
  BOOST_TEST_MESSAGE("sluice max RSS while reading: " << max_rss_reading.load() << " KiB");
  BOOST_TEST(max_rss_reading.load() < kMaxRssKib);
  client.close();
  BOOST_TEST(upstream.wait_finished(1));
  BOOST_TEST(sluice->stop() == 0, "log:\n" << sluice->log());
  const auto seconds = std::chrono::duration<double>(Clock::now() - test_start).count();
  BOOST_TEST_MESSAGE("backpressure test took " << seconds << " s");
  BOOST_TEST(seconds < 60.0);
}
