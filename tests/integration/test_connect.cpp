// Upstream connects that hang, IPv6 on both sides, host-name upstreams, TCP_NODELAY and TCP_INQ
// on both of a channel's sockets, and extensions through the real binary.
#define BOOST_TEST_MODULE connect
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// A listener whose accept queue is full: Linux drops further SYNs, so a connect to it hangs
// (the kernel retransmits the SYN) instead of being refused.
class BlackHole {
 public:
  BlackHole() {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_, 0) != 0)
      throw std::runtime_error("BlackHole: bind/listen failed");
    socklen_t len = sizeof a;
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    // Fill the accept queue (backlog 0 holds one); never accept.
    for (int i = 0; i < 3; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers_.push_back(fd);
    }
    std::this_thread::sleep_for(200ms);
  }
  ~BlackHole() {
    for (int fd : fillers_) ::close(fd);
    ::close(listen_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int listen_ = -1;
  std::uint16_t port_ = 0;
  std::vector<int> fillers_;
};

// A blocking client socket to [::1]:port with timeouts; -1 on failure.
int connect_v6(std::uint16_t port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::uint16_t port_of(const sockaddr_in& a) {
  return ntohs(a.sin_port);
}

// The TCP-level flag `option` (0 or 1: TCP_NODELAY, TCP_INQ) of the IPv4 socket in process `pid`
// whose local and peer ports are `local` and `peer` (0: any); -1 if it has none such.
int tcp_flag_in(pid_t pid, int option, std::uint16_t local, std::uint16_t peer) {
  int found = -1;
  inspect_fds(pid, "socket:", [&](int fd, const std::string&) {
    sockaddr_in here{}, there{};
    socklen_t len = sizeof here, plen = sizeof there;
    int value = 0;
    socklen_t vlen = sizeof value;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&here), &len) == 0 &&
        here.sin_family == AF_INET &&
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&there), &plen) == 0 &&
        port_of(here) == (local ? local : port_of(here)) && port_of(there) == peer &&
        ::getsockopt(fd, IPPROTO_TCP, option, &value, &vlen) == 0)
      found = value != 0;
    return found >= 0;
  });
  return found;
}

// The epoll events that process `pid` registered for each of its IPv4 sockets connected to
// 127.0.0.1:`peer`: the sockets' inodes (their fd links), found in the `ino:` field of the
// fdinfo lines of the process's epoll instances.
std::vector<unsigned> epoll_events_of_sockets_to(pid_t pid, std::uint16_t peer) {
  std::set<std::string> inodes;  // in hex, as fdinfo writes them
  inspect_fds(pid, "socket:", [&](int fd, const std::string& link) {
    sockaddr_in there{};
    socklen_t len = sizeof there;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&there), &len) == 0 &&
        there.sin_family == AF_INET && port_of(there) == peer) {
      char hex[32];
      std::snprintf(hex, sizeof hex, "%lx", std::stoul(link.substr(std::strlen("socket:["))));
      inodes.insert(hex);
    }
    return false;
  });
  std::vector<unsigned> events;
  inspect_fds(pid, "anon_inode:[eventpoll]", [&](int fd, const std::string&) {
    std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
    for (std::string line; std::getline(info, line);) {
      // "tfd:  12 events: 8000001b data: ... pos:0 ino:4d2 sdev:8"
      std::istringstream fields(line);
      std::string tag, tfd, events_tag, field;
      unsigned mask = 0;
      if (!(fields >> tag >> tfd >> events_tag >> std::hex >> mask) || tag != "tfd:") continue;
      while (fields >> field)
        if (field.starts_with("ino:") && inodes.count(field.substr(4))) events.push_back(mask);
    }
    return false;
  });
  return events;
}

std::uint16_t local_port(const Socket& s) {
  const std::string a = s.local_address();
  return static_cast<std::uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
}

}  // namespace

// sluice's client socket comes from accept(2) and inherits TCP_NODELAY from the listening socket
// (no system call per channel); the upstream's is set before the connect. A reload that turns
// "nodelay" off reaches the next channel through the listening socket too. TCP_INQ (reads say
// what is left, so a drained socket parks without a read for EAGAIN) is on both, whatever
// "nodelay" says.
BOOST_AUTO_TEST_CASE(nodelay_and_inq_are_on_both_sockets_of_a_channel_as_configured_and_reloaded) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  auto config = [&](bool nodelay) {
    return json{
        {"workers", 1},
        {"listeners",
         {{{"listen", loopback(port)}, {"upstream", echo->address()}, {"nodelay", nodelay}}}}};
  };
  const auto file = write_json(dir.file("nodelay.json"), config(true));
  auto sluice = Sluice::run_config(file);
  const pid_t pid = sluice->process().pid();

  Socket a = Socket::connect(port);
  BOOST_TEST(roundtrip(a, "a") == "a");  // the upstream is connected
  BOOST_TEST(tcp_flag_in(pid, TCP_NODELAY, port, local_port(a)) == 1);
  BOOST_TEST(tcp_flag_in(pid, TCP_NODELAY, 0, echo->port()) == 1);
  BOOST_TEST(tcp_flag_in(pid, TCP_INQ, port, local_port(a)) == 1);
  BOOST_TEST(tcp_flag_in(pid, TCP_INQ, 0, echo->port()) == 1);

  write_json(file, config(false));
  sluice->send_signal(SIGHUP);
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("reload done"), sluice->log());
  a.close();
  BOOST_REQUIRE(wait_until([&] { return echo->finished() == 1; }, kWait));
  Socket b = Socket::connect(port);
  BOOST_TEST(roundtrip(b, "b") == "b");
  BOOST_TEST(tcp_flag_in(pid, TCP_NODELAY, port, local_port(b)) == 0);
  BOOST_TEST(tcp_flag_in(pid, TCP_NODELAY, 0, echo->port()) == 0);
  BOOST_TEST(tcp_flag_in(pid, TCP_INQ, port, local_port(b)) == 1);
  BOOST_TEST(tcp_flag_in(pid, TCP_INQ, 0, echo->port()) == 1);
  b.close();
  BOOST_TEST(sluice->stop() == 0);
}

// A connect to a local upstream has as a rule completed by the time connect(2) returns, and
// sluice asks again at once instead of waiting for EPOLLOUT: the upstream socket stays
// registered for reads only, without the EPOLL_CTL_MOD that the wait would add. "As a rule": a
// handshake put off to ksoftirqd (a loaded machine) takes the wait, so one channel of up to
// five has to show it.
BOOST_AUTO_TEST_CASE(a_local_upstream_is_connected_without_waiting_for_epollout) {
  auto echo = echo_server();
  const auto port = free_port();
  TempDir dir;
  const auto file = write_json(
      dir.file("local.json"),
      json{{"workers", 1},
           {"listeners", {{{"listen", loopback(port)}, {"upstream", echo->address()}}}}});
  auto sluice = Sluice::run_config(file);
  std::vector<Socket> clients;
  bool without_epollout = false;
  for (int i = 0; i < 5 && !without_epollout; ++i) {
    clients.push_back(Socket::connect(port));
    BOOST_TEST(roundtrip(clients.back(), "a") == "a");  // its upstream is connected
    const auto registered = epoll_events_of_sockets_to(sluice->process().pid(), echo->port());
    BOOST_TEST(registered.size() == clients.size());
    for (const unsigned events : registered) {
      BOOST_TEST((events & EPOLLIN) != 0u);
      if ((events & EPOLLOUT) == 0) without_epollout = true;
    }
  }
  BOOST_TEST(without_epollout);
  for (auto& c : clients) c.close();
  BOOST_TEST(sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(a_hanging_upstream_connect_times_out_and_closes_only_its_channel) {
  TempDir dir;
  BlackHole hole;
  auto echo = echo_server();
  const auto slow = free_port();
  const auto live = free_port();
  const auto config = write_json(
      dir.file("proxy.json"),
      {{"workers", 2},
       {"listeners",
        {{{"name", "slow"},
          {"listen", loopback(slow)},
          {"upstream", loopback(hole.port())},
          {"connect_timeout", "1s"}},
         {{"name", "live"}, {"listen", loopback(live)}, {"upstream", echo->address()}}}}});
  auto sluice = Sluice::run_config(config);

  Socket client = Socket::connect(slow);
  client.set_timeout(20s);
  BOOST_REQUIRE(client.send_all("waiting for an upstream"));
  const auto start = Clock::now();
  std::string got;
  const End end = client.recv_to_end(got);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  BOOST_TEST((end == End::eof || end == End::reset), "ended with " << to_string(end));
  BOOST_TEST(got.empty());
  BOOST_TEST(seconds > 0.8, "closed after " << seconds << " s, before the 1 s connect_timeout");
  BOOST_TEST(seconds < (kSanitized ? 10.0 : 5.0), "closed after " << seconds << " s");
  BOOST_TEST(sluice->wait_for_log("connect timed out after 1s"), sluice->log());

  Socket other = Socket::connect(live);
  BOOST_TEST(roundtrip(other, "unaffected") == "unaffected");
  other.close();
  BOOST_TEST(sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(ipv6_listener_and_upstream) {
  TempDir dir;
  // An IPv6 echo upstream: sluice itself, with the echo middleware, on [::1].
  const auto echo_port = free_port();
  const auto port = free_port();
  const auto config =
      write_json(dir.file("v6.json"), {{"workers", 1},
                                       {"listeners",
                                        {{{"name", "v6"},
                                          {"listen", "[::1]:" + std::to_string(port)},
                                          {"upstream", "[::1]:" + std::to_string(echo_port)}},
                                         {{"name", "echo"},
                                          {"listen", "[::1]:" + std::to_string(echo_port)},
                                          {"middlewares", {{{"type", "echo"}}}}}}}});
  auto sluice = Sluice::run_config(config, {"--log-level", "debug"});
  const int fd = connect_v6(port);
  BOOST_REQUIRE(fd >= 0);
  Socket client(fd);
  BOOST_TEST(roundtrip(client, "over IPv6") == "over IPv6");
  client.shutdown_write();
  std::string rest;
  BOOST_TEST(std::string(to_string(client.recv_to_end(rest))) == "EOF");
  client.close();
  // The client's address is logged in brackets, as users write IPv6 addresses.
  BOOST_TEST(sluice->wait_for_log("accepted [::1]:"), sluice->log());
  BOOST_TEST(sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(host_name_upstream_is_resolved) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  const auto config = write_json(dir.file("name.json"),
                                 {{"workers", 1},
                                  {"listeners",
                                   {{{"listen", loopback(port)},
                                     {"upstream", "localhost:" + std::to_string(echo->port())}}}}});
  auto sluice = Sluice::run_config(config);
  Socket client = Socket::connect(port);
  BOOST_TEST(roundtrip(client, "by name") == "by name");
  client.close();
  BOOST_TEST(sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(extensions_start_before_listeners_and_stop_after_the_drain) {
  if (test_plugin_dir().empty()) return;  // built without the test plugins
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  const auto config =
      write_json(dir.file("tally.json"),
                 {{"workers", 2},
                  {"plugin_dirs", {test_plugin_dir()}},
                  {"extensions", {{"counts", {{"type", "tally"}}}}},
                  {"listeners",
                   {{{"listen", loopback(port)},
                     {"upstream", echo->address()},
                     {"middlewares", {{{"type", "tally-count"}, {"extension", "counts"}}}}}}}});
  auto sluice = Sluice::run_config(config);
  for (int i = 0; i < 3; ++i) {
    Socket client = Socket::connect(port);
    BOOST_TEST(roundtrip(client, "12345") == "12345");
    client.shutdown_write();
    std::string rest;
    client.recv_to_end(rest);
  }
  BOOST_TEST(sluice->wait_for_log("tally: 3 channels"), sluice->log());
  BOOST_TEST(sluice->stop() == 0);
  const std::string log = sluice->log();
  const auto started = log.find("tally extension started");
  const auto ready = log.find("sluice ready:");
  const auto draining = log.find("SIGTERM: stopping");
  const auto stopped = log.find("tally extension stopped");
  BOOST_REQUIRE(started != std::string::npos);
  BOOST_REQUIRE(stopped != std::string::npos);
  BOOST_TEST(started < ready, log);
  BOOST_TEST(draining < stopped, log);
}

BOOST_AUTO_TEST_CASE(a_middleware_naming_a_missing_or_wrong_extension_stops_start_up) {
  if (test_plugin_dir().empty()) return;
  TempDir dir;
  const auto port = free_port();
  auto config_with = [&](const std::string& extension) {
    return write_json(
        dir.file("bad.json"),
        {{"plugin_dirs", {test_plugin_dir()}},
         {"extensions", {{"counts", {{"type", "tally"}}}}},
         {"listeners",
          {{{"listen", loopback(port)},
            {"upstream", "127.0.0.1:9"},
            {"middlewares", {{{"type", "tally-count"}, {"extension", extension}}}}}}}});
  };
  auto r = run_sluice({"run", "-c", config_with("nope").string()});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.output.find("/listeners/0/middlewares/0/extension") != std::string::npos, r.output);
  BOOST_TEST(port_bindable(port));
}
