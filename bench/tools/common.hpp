// Small helpers shared by bench-echo and bench-load: argument parsing, addresses, limits.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace bench {

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::exit(2);
}

[[noreturn]] inline void die_errno(const std::string& what) {
  die(what + ": " + std::strerror(errno));
}

// --key value pairs (and bare --flag, stored as "1"), after an optional leading mode word.
struct Args {
  std::string mode;
  std::map<std::string, std::string> kv;

  Args(int argc, char** argv, bool has_mode) {
    int i = 1;
    if (has_mode) {
      if (argc < 2) die("missing mode");
      mode = argv[i++];
    }
    for (; i < argc; ++i) {
      std::string k = argv[i];
      if (k.rfind("--", 0) != 0) die("unexpected argument: " + k);
      k = k.substr(2);
      if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
        kv[k] = argv[++i];
      else
        kv[k] = "1";
    }
  }
  std::string str(const std::string& k, const std::string& def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  double num(const std::string& k, double def) const {
    auto it = kv.find(k);
    if (it == kv.end()) return def;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end != '\0') die("--" + k + ": not a number: " + it->second);
    return v;
  }
  bool flag(const std::string& k) const { return kv.count(k) != 0; }
};

// "127.0.0.1:PORT" only: the benchmark never leaves the loopback address.
inline sockaddr_in parse_addr(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) die("expected HOST:PORT, got " + s);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, s.substr(0, colon).c_str(), &a.sin_addr) != 1)
    die("bad IPv4 address: " + s);
  if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) die("only loopback addresses (127.0.0.0/8): " + s);
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(s.substr(colon + 1).c_str())));
  return a;
}

// Soft RLIMIT_NOFILE up to the hard limit (20,000 on the benchmark machine).
inline rlim_t raise_nofile() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

inline void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

inline void set_timeouts(int fd, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace bench
