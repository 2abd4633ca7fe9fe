// capture through the real binary, read back by tshark: 1 MiB of random bytes each way must come
// out of `tshark -qz follow,tcp,raw` exactly, with no malformed packet, no expert error (checksum
// validation on) and nothing for TCP analysis to flag; the same for an IPv6 channel.
#define BOOST_TEST_MODULE capture
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// tshark is a test dependency (Debian package `tshark`): fail clearly when it is missing.
std::string tshark_binary() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/tshark";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error(
      "tshark not found in PATH: it is needed by this test (install the Debian package tshark)");
}

// Runs tshark with `args` (with a timeout); its stdout only, stderr goes to `errors`.
std::string tshark(const TempDir& dir, const std::vector<std::string>& args) {
  const auto errors = dir.file("tshark.err");
  std::vector<std::string> argv{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>>'" + errors.string() + "'",
                                tshark_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = run_command(argv, 120s);
  if (r.exit_code != 0)
    throw std::runtime_error("tshark exited with " + std::to_string(r.exit_code) + ": " +
                             read_file(errors) + r.output);
  return r.output;
}

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// `tshark -qz follow,tcp,raw,N`: the two nodes and the hex each one sent (node 1's lines are
// indented with a tab).
struct Follow {
  std::string node0, node1;
  std::string hex0, hex1;
};
Follow parse_follow(const std::string& text) {
  Follow f;
  std::istringstream in(text);
  int separators = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("=====", 0) == 0) {
      ++separators;
      continue;
    }
    if (separators != 1) continue;
    if (line.rfind("Node 0: ", 0) == 0) {
      f.node0 = line.substr(8);
    } else if (line.rfind("Node 1: ", 0) == 0) {
      f.node1 = line.substr(8);
    } else if (line.rfind("Follow:", 0) == 0 || line.rfind("Filter:", 0) == 0) {
    } else if (!line.empty() && line[0] == '\t') {
      f.hex1 += line.substr(1);
    } else {
      f.hex0 += line;
    }
  }
  return f;
}

// Everything tshark can say is wrong with `file`, or "" if nothing.
std::string problems(const TempDir& dir, const std::filesystem::path& file) {
  std::string out;
  const std::string r = file.string();
  const std::string malformed = tshark(dir, {"-r", r, "-Y", "_ws.malformed"});
  if (!malformed.empty()) out += "malformed packets:\n" + malformed;
  const std::vector<std::string> checks{"-o", "ip.check_checksum:TRUE", "-o",
                                        "tcp.check_checksum:TRUE"};
  auto with_checks = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 2, checks.begin(), checks.end());
    return args;
  };
  const std::string flagged =
      tshark(dir, with_checks({"-r", r, "-Y",
                               "_ws.expert.severity >= warning || tcp.analysis.flags || "
                               "tcp.checksum.status != 1 || ip.checksum.status != 1"}));
  if (!flagged.empty())
    out += "packets with expert warnings, TCP analysis flags or checksums:\n" + flagged;
  const std::string expert = tshark(dir, with_checks({"-r", r, "-qz", "expert"}));
  if (expert.find("Errors (") != std::string::npos ||
      expert.find("Warnings (") != std::string::npos)
    out += "expert info:\n" + expert;
  return out;
}

void send_raw(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader reports the short stream
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Sends `out` from a thread while reading everything the peer sends until EOF; then half-closes.
std::string exchange_both_ways(Socket& s, const std::string& out) {
  std::thread sender([&] {
    send_raw(s.fd(), out);
    ::shutdown(s.fd(), SHUT_WR);
  });
  std::string in;
  s.recv_to_end(in);
  sender.join();
  return in;
}

Socket connect_v6(std::uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_loopback;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(std::string("connect [::1]:") + std::to_string(port) + ": " +
                             std::strerror(err));
  }
  return Socket(fd);
}

std::uint16_t local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(a).sin6_port
                                       : reinterpret_cast<sockaddr_in&>(a).sin_port);
}

}  // namespace

BOOST_AUTO_TEST_CASE(tshark_is_available) {
  BOOST_TEST(!tshark_binary().empty());
}

BOOST_AUTO_TEST_CASE(one_mib_each_way_reads_back_exactly) {
  TempDir dir;
  const std::string to_server = random_bytes(1 << 20, 11);
  const std::string to_client = random_bytes(1 << 20, 12);
  std::string server_got;
  Server server([&](Socket& s) { server_got = exchange_both_ways(s, to_client); });
  const std::uint16_t port = free_port();
  const auto capture = dir.file("capture.pcap");
  const auto config =
      write_json(dir.file("proxy.json"),
                 {{"workers", 2},
                  {"listeners",
                   {{{"name", "cap"},
                     {"listen", loopback(port)},
                     {"upstream", server.address()},
                     {"middlewares", {{{"type", "capture"}, {"path", capture.string()}}}}}}}});
  auto sluice = Sluice::run_config(config, {"--log-level", "debug"});

  Socket client = Socket::connect(port);
  const std::string client_address = client.local_address();
  const std::string client_got = exchange_both_ways(client, to_server);
  BOOST_REQUIRE(server.wait_finished(1));
  BOOST_TEST((client_got == to_client));
  BOOST_TEST((server_got == to_server));
  client.close();
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("cap: closed:"), sluice->log());

  // Read while sluice runs: the file is flushed when a channel closes.
  const Follow f = parse_follow(tshark(dir, {"-r", capture.string(), "-qz", "follow,tcp,raw,0"}));
  BOOST_TEST(f.node0 == client_address);
  BOOST_TEST(f.node1 == server.address());
  BOOST_TEST(f.hex0.size() == 2u * to_server.size());
  BOOST_TEST(f.hex1.size() == 2u * to_client.size());
  BOOST_TEST((f.hex0 == hex(to_server)));
  BOOST_TEST((f.hex1 == hex(to_client)));
  BOOST_TEST(problems(dir, capture) == "");
  // One conversation with a handshake and a FIN each way.
  const std::string summary =
      tshark(dir, {"-r", capture.string(), "-T", "fields", "-e", "tcp.flags.str"});
  BOOST_TEST(summary.rfind("··········S·\n", 0) == 0u, summary.substr(0, 200));
  BOOST_TEST(sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(ipv6_channel_reads_back_exactly) {
  TempDir dir;
  const std::uint16_t front = free_port(), echo = free_port();
  const auto capture = dir.file("capture6.pcap");
  const auto config =
      write_json(dir.file("proxy.json"),
                 {{"workers", 1},
                  {"listeners",
                   {{{"name", "front"},
                     {"listen", "[::1]:" + std::to_string(front)},
                     {"upstream", "[::1]:" + std::to_string(echo)},
                     {"middlewares", {{{"type", "capture"}, {"path", capture.string()}}}}},
                    {{"name", "echo6"},
                     {"listen", "[::1]:" + std::to_string(echo)},
                     {"middlewares", {{{"type", "echo"}}}}}}}});
  auto sluice = Sluice::run_config(config, {"--log-level", "debug"});
  const std::string data = random_bytes(200 * 1024, 13);
  {
    Socket client = connect_v6(front);
    const std::string client_port = std::to_string(local_port(client.fd()));
    BOOST_TEST((exchange_both_ways(client, data) == data));
    client.close();
    BOOST_REQUIRE_MESSAGE(sluice->wait_for_log("front: closed:"), sluice->log());
    const Follow f = parse_follow(tshark(dir, {"-r", capture.string(), "-qz", "follow,tcp,raw,0"}));
    BOOST_TEST(f.node0 == "[::1]:" + client_port);
    BOOST_TEST(f.node1 == "[::1]:" + std::to_string(echo));
    BOOST_TEST((f.hex0 == hex(data)));
    BOOST_TEST((f.hex1 == hex(data)));
  }
  BOOST_TEST(problems(dir, capture) == "");
  BOOST_TEST(sluice->stop() == 0);
}
