// bench-echo: an epoll echo server for the benchmark, bounded in time.
//
//   bench-echo --listen 127.0.0.1:PORT [--seconds S] [--threads T]
//
// Echoes every byte back on the connection it came from; closes a connection after the peer's
// FIN once everything is echoed. Port 0 picks a free port. Prints "listening 127.0.0.1:PORT" once
// it accepts, and exits by itself after --seconds (default 600). With --threads > 1, each thread
// has its own SO_REUSEPORT listener on the same port. Raises RLIMIT_NOFILE to the hard limit.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.hpp"

namespace {

using namespace bench;

struct Conn {
  int fd;
  std::string pending;  // bytes read but not yet written back (the peer reads slowly)
  bool eof = false;
};

std::atomic<long> g_accepted{0};

int make_listener(sockaddr_in addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die_errno("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die_errno("bind");
  if (::listen(fd, 4096) != 0) die_errno("listen");
  return fd;
}

void serve(int lfd, Clock::time_point deadline) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die_errno("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr = the listener
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<epoll_event> events(256);
  std::vector<char> buf(64 * 1024);

  auto close_conn = [&](Conn* c) {
    ::close(c->fd);  // also removes it from the epoll set
    delete c;
  };
  auto want = [&](Conn* c, uint32_t what) {
    epoll_event e{};
    e.events = what;
    e.data.ptr = c;
    ::epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
  };

  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                         static_cast<int>(std::min<long>(left.count(), 1000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      die_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == nullptr) {
        for (;;) {
          int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
              std::fprintf(stderr, "bench-echo: accept: %s\n", std::strerror(errno));
            break;
          }
          set_nodelay(fd);
          g_accepted.fetch_add(1, std::memory_order_relaxed);
          auto* nc = new Conn{fd, {}, false};
          epoll_event e{};
          e.events = EPOLLIN | EPOLLRDHUP;
          e.data.ptr = nc;
          if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) close_conn(nc);
        }
        continue;
      }
      bool dead = false;
      if (!c->pending.empty() && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        ssize_t w = ::send(c->fd, c->pending.data(), c->pending.size(), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) dead = true;
        if (w > 0) c->pending.erase(0, static_cast<size_t>(w));
        if (!dead && c->pending.empty()) {
          if (c->eof)
            dead = true;
          else
            want(c, EPOLLIN | EPOLLRDHUP);
        }
      } else if (c->pending.empty() &&
                 (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
        // Read until the socket is empty or the peer stops reading (then wait for EPOLLOUT).
        for (;;) {
          ssize_t r = ::recv(c->fd, buf.data(), buf.size(), 0);
          if (r == 0) {
            c->eof = true;
            dead = true;
            break;
          }
          if (r < 0) {
            if (errno != EAGAIN) dead = true;
            break;
          }
          ssize_t w = ::send(c->fd, buf.data(), static_cast<size_t>(r), MSG_NOSIGNAL);
          if (w < 0 && errno != EAGAIN) {
            dead = true;
            break;
          }
          if (w < 0) w = 0;
          if (w < r) {
            c->pending.assign(buf.data() + w, static_cast<size_t>(r - w));
            want(c, EPOLLOUT);
            break;
          }
          if (r < static_cast<ssize_t>(buf.size())) break;
        }
        if (dead && c->eof && !c->pending.empty()) dead = false;  // flush, then close
      }
      if (dead) close_conn(c);
    }
  }
  ::close(ep);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, false);
  ::signal(SIGPIPE, SIG_IGN);
  const auto limit = raise_nofile();
  auto addr = parse_addr(args.str("listen", "127.0.0.1:0"));
  const double seconds = args.num("seconds", 600);
  const int threads = std::max(1, static_cast<int>(args.num("threads", 1)));
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));

  std::vector<int> listeners;
  listeners.push_back(make_listener(addr));
  socklen_t len = sizeof addr;
  ::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&addr), &len);
  for (int i = 1; i < threads; ++i) listeners.push_back(make_listener(addr));
  std::printf("listening 127.0.0.1:%u nofile %lu\n", ntohs(addr.sin_port),
              static_cast<unsigned long>(limit));
  std::fflush(stdout);

  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(serve, listeners[i], deadline);
  serve(listeners[0], deadline);
  for (auto& t : pool) t.join();
  std::fprintf(stderr, "bench-echo: accepted %ld connections\n", g_accepted.load());
  return 0;
}
