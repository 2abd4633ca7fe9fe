// bench-load: the benchmark's load generator. Every mode is bounded by --seconds (a hard alarm
// ends the process a few seconds after it) and by its count; results go to stdout as one JSON
// line, progress and errors to stderr. Only loopback addresses are accepted.
//
//   bench-load rtt      --connect A [--count N] [--warmup W] [--size 64] [--seconds S]
//       one connection, N sequential SIZE-byte ping-pongs after W unmeasured ones; prints
//       percentiles in microseconds. --count 0 only connects, half-closes and waits for EOF
//       (the baseline for instruction counts).
//   bench-load connrate --connect A [--threads 4] [--size 64] [--seconds S]
//       each thread loops: connect, SIZE-byte echo, close, until S seconds have passed.
//   bench-load bulk     --connect A [--bytes B] [--seconds S]
//       one connection: sends B bytes while reading the echo; once all B are back, half-closes
//       and reads to EOF; checks that the bytes came back unchanged.
//   bench-load idle     --connect A [--count N] [--size 64] [--seconds S]
//       opens N connections and holds them. Prints "ready OPENED FAILED" when done, then obeys
//       one command per stdin line: "echo" (every connection echoes SIZE bytes once; prints
//       "echoed OK FAILED") and "quit" (or end of input, or --seconds): closes all and prints
//       the JSON summary.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace {

using namespace bench;

// Blocking connect with a timeout on every later send/recv.
int dial(const sockaddr_in& addr, double io_timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  set_timeouts(fd, io_timeout);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  set_nodelay(fd);
  return fd;
}

bool send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool recv_all(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Half-close and wait (bounded by the socket's timeout) for the peer's FIN, so that the whole
// channel is torn down before the process goes on.
void finish(int fd) {
  ::shutdown(fd, SHUT_WR);
  char b[4096];
  while (::recv(fd, b, sizeof b, 0) > 0) {
  }
  ::close(fd);
}

std::string payload(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

int mode_rtt(const Args& a, const sockaddr_in& addr, double seconds) {
  const long count = static_cast<long>(a.num("count", 10000));
  const long warmup = count == 0 ? 0 : static_cast<long>(a.num("warmup", 100));
  const size_t size = static_cast<size_t>(a.num("size", 64));
  const auto msg = payload(size);
  std::string back(size, '\0');
  int fd = dial(addr, 10);
  if (fd < 0) die_errno("connect");
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  const auto t0 = Clock::now();
  long errors = 0;
  for (long i = 0; i < warmup + count; ++i) {
    if (seconds_since(t0) > seconds) break;
    const auto s = Clock::now();
    if (!send_all(fd, msg.data(), size) || !recv_all(fd, back.data(), size)) {
      ++errors;
      break;
    }
    const auto e = Clock::now();
    if (back != msg) {
      ++errors;
      break;
    }
    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(e - s).count());
  }
  finish(fd);
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) {
    if (us.empty()) return 0.0;
    size_t i = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(us.size())));
    return us[std::min(us.size() - 1, i == 0 ? 0 : i - 1)];
  };
  double sum = 0;
  for (double v : us) sum += v;
  std::printf(
      "{\"mode\":\"rtt\",\"count\":%zu,\"errors\":%ld,\"size\":%zu,\"p50_us\":%.2f,"
      "\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"min_us\":%.2f,\"max_us\":%.2f,"
      "\"mean_us\":%.2f,\"seconds\":%.3f}\n",
      us.size(), errors, size, pct(50), pct(90), pct(99), pct(99.9), us.empty() ? 0 : us.front(),
      us.empty() ? 0 : us.back(), us.empty() ? 0 : sum / static_cast<double>(us.size()),
      seconds_since(t0));
  return (errors != 0 || static_cast<long>(us.size()) != count) ? 1 : 0;
}

int mode_connrate(const Args& a, const sockaddr_in& addr, double seconds) {
  const int threads = std::max(1, static_cast<int>(a.num("threads", 4)));
  const size_t size = static_cast<size_t>(a.num("size", 64));
  const auto msg = payload(size);
  std::atomic<long> ok{0}, connect_errors{0}, io_errors{0};
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      std::string back(size, '\0');
      long mine = 0, cerr = 0, ierr = 0;
      while (Clock::now() < deadline) {
        int fd = dial(addr, 2);
        if (fd < 0) {
          ++cerr;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        if (send_all(fd, msg.data(), size) && recv_all(fd, back.data(), size) && back == msg)
          ++mine;
        else
          ++ierr;
        ::close(fd);
      }
      ok += mine;
      connect_errors += cerr;
      io_errors += ierr;
    });
  for (auto& t : pool) t.join();
  const double elapsed = seconds_since(t0);
  std::printf(
      "{\"mode\":\"connrate\",\"threads\":%d,\"connections\":%ld,\"connect_errors\":%ld,"
      "\"io_errors\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n",
      threads, ok.load(), connect_errors.load(), io_errors.load(), elapsed,
      static_cast<double>(ok.load()) / elapsed);
  return ok.load() == 0 ? 1 : 0;
}

int mode_bulk(const Args& a, const sockaddr_in& addr, double seconds) {
  const size_t total = static_cast<size_t>(a.num("bytes", 4 * 1024 * 1024));
  auto at = [](size_t off) { return static_cast<char>((off * 7 + off / 4096) & 0xff); };
  std::vector<char> out(64 * 1024), in(64 * 1024);
  int fd = dial(addr, 10);
  if (fd < 0) die_errno("connect");
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0, received = 0;
  bool shut = false, eof = false, intact = true;
  const auto t0 = Clock::now();
  bool half_closed = false;
  if (total == 0) {
    ::shutdown(fd, SHUT_WR);
    shut = half_closed = true;
  }
  while (!eof && seconds_since(t0) < seconds) {
    pollfd p{fd, static_cast<short>(POLLIN | (shut ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, 1000) < 0 && errno != EINTR) break;
    if (!shut && (p.revents & POLLOUT)) {
      const size_t n = std::min(out.size(), total - sent);
      for (size_t i = 0; i < n; ++i) out[i] = at(sent + i);
      ssize_t w = ::send(fd, out.data(), n, MSG_NOSIGNAL);
      if (w > 0) sent += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN) break;
      if (sent == total) shut = true;  // half-close only once the echo is back (below)
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      for (;;) {
        ssize_t r = ::recv(fd, in.data(), in.size(), 0);
        if (r == 0) {
          eof = true;
          break;
        }
        if (r < 0) {
          if (errno != EAGAIN) eof = true;
          break;
        }
        for (ssize_t i = 0; i < r; ++i)
          if (in[static_cast<size_t>(i)] != at(received + static_cast<size_t>(i))) intact = false;
        received += static_cast<size_t>(r);
      }
      // Everything came back: now half-close and wait for the FIN, as `rtt` does. (Not earlier:
      // nginx's stream module closes both directions on the client's FIN unless
      // proxy_half_close is on.)
      if (shut && !half_closed && received >= total) {
        ::shutdown(fd, SHUT_WR);
        half_closed = true;
      }
    }
  }
  ::close(fd);
  const double elapsed = seconds_since(t0);
  const bool ok = eof && intact && sent == total && received == total;
  std::printf(
      "{\"mode\":\"bulk\",\"bytes\":%zu,\"sent\":%zu,\"received\":%zu,\"intact\":%s,"
      "\"ok\":%s,\"seconds\":%.3f}\n",
      total, sent, received, intact ? "true" : "false", ok ? "true" : "false", elapsed);
  return ok ? 0 : 1;
}

int mode_idle(const Args& a, const sockaddr_in& addr, double seconds) {
  const long count = static_cast<long>(a.num("count", 1000));
  const size_t size = static_cast<size_t>(a.num("size", 64));
  const auto msg = payload(size);
  const auto t0 = Clock::now();
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(count));
  long failed = 0;
  int last_errno = 0;
  for (long i = 0; i < count && seconds_since(t0) < seconds; ++i) {
    int fd = dial(addr, 10);
    if (fd < 0) {
      ++failed;
      last_errno = errno;
      continue;
    }
    fds.push_back(fd);
  }
  std::printf("ready %zu %ld%s%s\n", fds.size(), failed, last_errno ? " " : "",
              last_errno ? std::strerror(last_errno) : "");
  std::fflush(stdout);
  long echoed = 0, echo_failed = 0;
  std::string input;  // stdin read with read(2): no stdio buffer hides a line from poll(2)
  bool input_open = true;
  for (;;) {
    const double left = seconds - seconds_since(t0);
    if (left <= 0) break;
    auto nl = input.find('\n');
    if (nl == std::string::npos) {
      if (!input_open) break;
      pollfd p{0, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(std::min(left, 1.0) * 1000));
      if (n == 0) continue;
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      char b[256];
      ssize_t r = ::read(0, b, sizeof b);
      if (r <= 0)
        input_open = false;
      else
        input.append(b, static_cast<size_t>(r));
      continue;
    }
    const std::string line = input.substr(0, nl);
    input.erase(0, nl + 1);
    if (line == "quit") break;
    if (line == "echo") {
      // Pipelined: every connection gets its bytes first, then every echo is read back.
      std::vector<char> sent_ok(fds.size(), 0);
      for (size_t i = 0; i < fds.size(); ++i) sent_ok[i] = send_all(fds[i], msg.data(), size);
      std::string back(size, '\0');
      long ok = 0, bad = 0;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (sent_ok[i] && seconds_since(t0) < seconds && recv_all(fds[i], back.data(), size) &&
            back == msg)
          ++ok;
        else
          ++bad;
      }
      echoed += ok;
      echo_failed += bad;
      std::printf("echoed %ld %ld\n", ok, bad);
      std::fflush(stdout);
    }
  }
  for (int fd : fds) ::close(fd);
  std::printf(
      "{\"mode\":\"idle\",\"count\":%ld,\"opened\":%zu,\"failed\":%ld,\"echoed\":%ld,"
      "\"echo_failed\":%ld,\"seconds\":%.3f}\n",
      count, fds.size(), failed, echoed, echo_failed, seconds_since(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, true);
  ::signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  const auto addr = parse_addr(args.str("connect", ""));
  const double seconds = args.num("seconds", 60);
  // The hard bound: whatever hangs, the process is gone a few seconds after --seconds.
  ::alarm(static_cast<unsigned>(seconds) + 15);
  if (args.mode == "rtt") return mode_rtt(args, addr, seconds);
  if (args.mode == "connrate") return mode_connrate(args, addr, seconds);
  if (args.mode == "bulk") return mode_bulk(args, addr, seconds);
  if (args.mode == "idle") return mode_idle(args, addr, seconds);
  die("unknown mode " + args.mode + " (rtt, connrate, bulk or idle)");
}
