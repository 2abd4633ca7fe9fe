// Signals: SIGTERM drains (open channels finish, new ones are refused, exit 0), drain_timeout
// cuts idle channels, SIGHUP reloads the chain for new channels only and survives a broken config.
#define BOOST_TEST_MODULE signals
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

json proxy(std::uint16_t port, const Server& upstream, json extra = json::object()) {
  json root = {
      {"workers", 2},
      {"listeners",
       {{{"name", "proxy"}, {"listen", loopback(port)}, {"upstream", upstream.address()}}}}};
  for (auto it = extra.begin(); it != extra.end(); ++it) root[it.key()] = it.value();
  return root;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigterm_lets_a_transfer_finish) {
  constexpr std::size_t kBytes = 4u << 20;
  constexpr std::size_t kPiece = 64 * 1024;
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  auto sluice = Sluice::run_config(write_json(dir.file("proxy.json"), proxy(port, *echo)));

  Socket client = Socket::connect(port);
  const std::string data = random_bytes(kBytes, 9);
  std::atomic<std::size_t> sent{0};
  std::string writer_error;
  // ~1 s of sending: 64 pieces, 15 ms apart.
  std::thread writer([&] {
    for (std::size_t off = 0; off < kBytes; off += kPiece) {
      if (!client.send_all(std::string_view(data).substr(off, kPiece))) {
        writer_error = std::strerror(client.last_error());
        return;
      }
      sent = off + kPiece;
      std::this_thread::sleep_for(15ms);
    }
    client.shutdown_write();
  });
  std::string received;
  End end = End::data;
  std::thread reader([&] { end = client.recv_to_end(received, 2 * kBytes); });

  BOOST_REQUIRE(wait_until([&] { return sent.load() >= kBytes / 8; }, kWait));
  const std::size_t sent_at_signal = sent.load();
  sluice->send_signal(SIGTERM);
  BOOST_TEST(sent_at_signal < kBytes, "the transfer was over before SIGTERM");
  BOOST_TEST(sluice->wait_for_log("SIGTERM: stopping"), sluice->log());

  // New connections are refused (the listeners close on their workers right after the signal).
  int error = 0;
  bool refused = wait_until(
      [&] {
        auto probe = Socket::try_connect(port, error, 5s);
        return !probe && error == ECONNREFUSED;
      },
      10s);
  BOOST_TEST(refused, "connect after SIGTERM: " << (error ? std::strerror(error) : "accepted"));

  writer.join();
  reader.join();
  BOOST_TEST(writer_error == "");
  BOOST_TEST(std::string(to_string(end)) == "EOF");
  BOOST_TEST(received.size() == kBytes);
  BOOST_TEST(sha256_hex(received) == sha256_hex(data));
  client.close();

  const auto status = sluice->wait_exit(kWait);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after the channel closed; log:\n"
                                                << sluice->log());
  BOOST_TEST(*status == 0, sluice->log());
}

BOOST_AUTO_TEST_CASE(drain_timeout_closes_idle_channels) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  auto sluice = Sluice::run_config(
      write_json(dir.file("proxy.json"), proxy(port, *echo, {{"drain_timeout", "1s"}})));

  Socket client = Socket::connect(port);
  client.set_timeout(10s);
  BOOST_TEST(roundtrip(client, "hello") == "hello");  // the channel is up, then idle

  const auto start = Clock::now();
  sluice->send_signal(SIGTERM);
  std::string rest;
  const End end = client.recv_to_end(rest);
  const double closed_after = seconds_since(start);
  const auto status = sluice->wait_exit(10s);
  const double exited_after = seconds_since(start);
  BOOST_TEST(std::string(to_string(end)) == "EOF");
  BOOST_TEST(rest.empty());
  BOOST_TEST(closed_after >= 0.9, "closed before the drain timeout: " << closed_after << " s");
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit; log:\n" << sluice->log());
  BOOST_TEST(*status == 0, sluice->log());
  BOOST_TEST(exited_after < 3.5, "exit took " << exited_after << " s");
  BOOST_TEST(sluice->log().find("drain timeout") != std::string::npos, sluice->log());
}

BOOST_AUTO_TEST_CASE(sighup_reloads_the_chain_for_new_channels) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  auto replace = [&](const char* to) {
    json config = proxy(port, *echo);
    config["listeners"][0]["middlewares"] = {{{"type", "replace"}, {"from", "a"}, {"to", to}}};
    return config;
  };
  const auto file = write_json(dir.file("proxy.json"), replace("b"));
  auto sluice = Sluice::run_config(file);

  Socket a = Socket::connect(port);
  BOOST_TEST(roundtrip(a, "xax") == "xbx");

  write_json(file, replace("c"));
  sluice->send_signal(SIGHUP);
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("reload done"), sluice->log());
  BOOST_TEST(roundtrip(a, "xax") == "xbx");  // a running channel keeps its chain
  Socket b = Socket::connect(port);
  BOOST_TEST(roundtrip(b, "xax") == "xcx");

  write_file(file, "{ \"listeners\": [ this is not JSON ");
  sluice->send_signal(SIGHUP);
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("reload failed"), sluice->log());
  BOOST_TEST(sluice->log().find(file.string()) != std::string::npos, sluice->log());
  Socket c = Socket::connect(port);
  BOOST_TEST(roundtrip(c, "xax") == "xcx");  // the last good config stays in force
  BOOST_TEST(roundtrip(a, "aa") == "bb");
  BOOST_TEST(roundtrip(b, "aa") == "cc");

  for (Socket* s : {&a, &b, &c}) {
    s->shutdown_write();
    std::string rest;
    BOOST_TEST(std::string(to_string(s->recv_to_end(rest))) == "EOF");
    s->close();
  }
  BOOST_TEST(sluice->running());
  BOOST_TEST(sluice->stop() == 0, sluice->log());
}

// A reload that fails leaves no file behind: the new chain's capture opens its file only once
// every listener of the new config is bound.
BOOST_AUTO_TEST_CASE(a_failed_reload_creates_no_file) {
  TempDir dir;
  PortHolder busy;
  auto echo = echo_server();
  const auto port = free_port();
  const auto file = write_json(dir.file("proxy.json"), proxy(port, *echo));
  auto sluice = Sluice::run_config(file);

  const auto pcap = dir.file("traffic.pcap");
  json next = proxy(port, *echo);
  next["listeners"][0]["middlewares"] = {{{"type", "capture"}, {"path", pcap.string()}}};
  next["listeners"].push_back(
      {{"name", "busy"}, {"listen", loopback(busy.port())}, {"upstream", echo->address()}});
  write_json(file, next);
  sluice->send_signal(SIGHUP);
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("reload failed"), sluice->log());
  BOOST_TEST(contains(sluice->log(), "/listeners/1/listen"), sluice->log());
  BOOST_TEST(!std::filesystem::exists(pcap));
  Socket a = Socket::connect(port);
  BOOST_TEST(roundtrip(a, "still proxied") == "still proxied");

  next["listeners"].erase(1);
  write_json(file, next);
  sluice->send_signal(SIGHUP);
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("reload done"), sluice->log());
  BOOST_TEST(std::filesystem::exists(pcap));  // its header is written when the chain starts
  a.close();
  BOOST_TEST(sluice->stop() == 0, sluice->log());
}

// A signal sent the moment "sluice ready:" appears must be handled, not kill the process: the
// handlers must be in place before the ready line is written. The log goes to a FIFO here, so the
// test wakes up as the line is written and signals at once (polling a file is too slow to hit
// the window reliably).
namespace {

class FifoLog {
 public:
  FifoLog() : path_(dir_.file("log.fifo")) {
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
    fd_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("open fifo failed");
  }
  ~FifoLog() { ::close(fd_); }
  const std::filesystem::path& path() const { return path_; }
  const std::string& text() const { return text_; }
  // Reads until `needle` is in the text read so far, the writer is gone, or timeout.
  bool wait_for(std::string_view needle, Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    while (text_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n == 0) return false;  // the writer exited
      if (n > 0) text_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

 private:
  TempDir dir_;
  std::filesystem::path path_;
  int fd_ = -1;
  std::string text_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(signals_right_after_ready_are_handled) {
  auto echo = echo_server();
  // The window is short: how often a broken build fails here depends on the machine's load.
  for (int i = 0; i < 20; ++i) {
    BOOST_TEST_CONTEXT("attempt " << i) {
      FifoLog log;
      const auto port = free_port();
      Process sluice({binary(), "run", "--listen", loopback(port), "--upstream", echo->address(),
                      "--workers", "1"},
                     log.path());
      BOOST_REQUIRE_MESSAGE(log.wait_for("sluice ready:", kWait), log.text());
      sluice.send_signal(SIGHUP);
      BOOST_TEST(log.wait_for("reload done", kWait), log.text());
      BOOST_TEST(sluice.running(), log.text());
      sluice.send_signal(SIGTERM);
      log.wait_for("stopped", kWait);  // keeps reading, so the FIFO never fills
      const auto status = sluice.wait_exit(kWait);
      BOOST_TEST((status && *status == 0), "exit " << (status ? *status : -1) << "\n"
                                                   << log.text());
    }
  }
}
