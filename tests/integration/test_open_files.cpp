// Open files: sluice raises its soft RLIMIT_NOFILE to the hard limit; when descriptors run out
// anyway, accepting pauses (the client waits in the backlog) and resumes once a channel closes,
// while open channels go on; every socket it holds is non-blocking and close-on-exec.
#define BOOST_TEST_MODULE open_files
#include <fcntl.h>
#include <sys/resource.h>

#include <boost/test/unit_test.hpp>
#include <fstream>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

std::filesystem::path one_listener(const TempDir& dir, std::uint16_t port, const Server& upstream) {
  // One worker: every channel lands on the same descriptor table. No splicing: a pipe would
  // take two more descriptors per direction, and the count below is of sockets.
  return write_json(dir.file("proxy.json"), {{"workers", 1},
                                             {"listeners",
                                              {{{"name", "limited"},
                                                {"listen", loopback(port)},
                                                {"upstream", upstream.address()},
                                                {"splice", false}}}}});
}

std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

// The "flags:" line of /proc/PID/fdinfo/FD (octal open flags).
long fd_flags(pid_t pid, int fd) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
  std::string key;
  while (in >> key)
    if (key == "flags:") {
      std::string octal;
      in >> octal;
      return std::stol(octal, nullptr, 8);
    }
  return -1;
}

rlimit nofile_of(pid_t pid) {
  rlimit r{};
  if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &r) != 0)
    throw std::runtime_error("prlimit: " + std::string(std::strerror(errno)));
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(soft_limit_is_raised_to_the_hard_limit) {
  auto echo = echo_server();
  TempDir dir;
  const std::uint16_t port = free_port();
  const auto config = one_listener(dir, port, *echo);
  // sluice inherits a login shell's low soft limit, under an unchanged hard one.
  rlimit saved{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  const rlim_t soft = 64;
  BOOST_REQUIRE_MESSAGE(saved.rlim_max > 4 * soft, "hard limit " << saved.rlim_max);
  rlimit low = saved;
  low.rlim_cur = soft;
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::unique_ptr<Sluice> sluice;
  try {
    sluice = Sluice::run_config(config);
  } catch (...) {
    ::setrlimit(RLIMIT_NOFILE, &saved);
    throw;
  }
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  const pid_t pid = sluice->process().pid();
  BOOST_TEST(nofile_of(pid).rlim_cur == saved.rlim_max);
  BOOST_TEST(sluice->log().find("open files: limit raised from 64 to the hard limit, " +
                                std::to_string(saved.rlim_max)) != std::string::npos,
             sluice->log());
  // More channels than 64 descriptors could hold, all at once.
  std::vector<Socket> clients;
  for (int i = 0; i < 40; ++i) clients.push_back(Socket::connect(port));
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string msg = "client " + std::to_string(i);
    BOOST_TEST(roundtrip(clients[i], msg) == msg);
  }
  BOOST_TEST(open_fds(pid) > soft);
  clients.clear();
  BOOST_TEST(sluice->stop() == 0, sluice->log());
}

// In the sanitized build UBSan's vptr check misfires here: it probes memory through a pipe
// (IsAccessibleMemoryRange), which cannot open while descriptors run out, so it reports a valid
// object as one with an invalid vptr ("memory cannot be printed"). The sanitized build keeps vptr
// reports recoverable so that such a report does not halt sluice (see CMakeLists.txt).
BOOST_AUTO_TEST_CASE(accepting_pauses_while_descriptors_run_out) {
  auto echo = echo_server();
  TempDir dir;
  const std::uint16_t port = free_port();
  auto sluice = Sluice::run_config(one_listener(dir, port, *echo));
  const pid_t pid = sluice->process().pid();
  // Room for exactly `fit` channels (two sockets each) above what sluice holds now.
  constexpr int fit = 4;
  const auto limit = static_cast<rlim_t>(open_fds(pid) + 2 * fit);
  const rlimit tight{limit, limit};
  BOOST_REQUIRE(::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr) == 0);

  std::vector<Socket> clients;
  for (int i = 0; i < fit; ++i) {
    clients.push_back(Socket::connect(port));
    BOOST_TEST(roundtrip(clients.back(), "fits") == "fits");
  }
  // One more: the kernel completes its handshake, sluice cannot accept it yet.
  Socket late = Socket::connect(port);
  BOOST_REQUIRE(late.send_all("late"));
  BOOST_TEST(sluice->wait_for_log("limited: accept failed: Too many open files"), sluice->log());
  late.set_timeout(300ms);
  std::size_t got = 0;
  char buf[16];
  BOOST_TEST((late.recv_some(buf, sizeof buf, got) == End::timeout), "got " << got << " bytes");
  // The channels already open are not disturbed.
  for (auto& c : clients) BOOST_TEST(roundtrip(c, "still") == "still");
  // Each socket sluice holds is non-blocking and close-on-exec (what adopting it assumes).
  std::size_t sockets = 0;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec).string().rfind("socket:", 0) != 0) continue;
    const long flags = fd_flags(pid, std::stoi(e.path().filename().string()));
    BOOST_TEST((flags & O_CLOEXEC) != 0, "fd " << e.path().filename() << " flags " << flags);
    BOOST_TEST((flags & O_NONBLOCK) != 0, "fd " << e.path().filename() << " flags " << flags);
    ++sockets;
  }
  BOOST_TEST(sockets >= static_cast<std::size_t>(2 * fit + 1));  // channels and the listener
  // A channel closes: its two descriptors go to the waiting client.
  clients.front().close();
  late.set_timeout(kWait);
  BOOST_TEST(late.recv_exact(4) == "late", sluice->log());
  BOOST_TEST(roundtrip(late, "served") == "served");
  clients.clear();
  late.close();
  BOOST_TEST(sluice->stop() == 0, sluice->log());
}
