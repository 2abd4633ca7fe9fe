#include "listener.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <boost/asio/post.hpp>

#include "channel.hpp"
#include "log.hpp"
#include "readable_wait.hpp"
#include "tcp_flag.hpp"

namespace sluice {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// The listening socket is made with plain system calls on the thread that binds (so a bad
// address fails there, at once) and handed to the worker's acceptor only on the worker's own
// thread: the worker's reactor runs without per-socket locks
// (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) and must never see another thread register, use or drop
// one of its sockets.
//
// The listening socket is a Socket to Asio, waited on with ReadableWait (a pending connection
// makes it readable) and accepted from with accept4(2): the channel's socket comes out
// non-blocking and close-on-exec, adopted without the ioctl and the EPOLL_CTL_DEL that Asio's
// async_accept would cost per channel.
struct Listener::Acceptor : std::enable_shared_from_this<Listener::Acceptor> {
  Acceptor(Worker& w, std::shared_ptr<const ListenerSpec> s)
      : worker(w), listening(w.io), pause(w.io), spec(std::move(s)) {}
  ~Acceptor() {
    if (fd >= 0) ::close(fd);  // never handed over
  }
  Worker& worker;
  Socket listening;
  Timer pause;  // after an accept failure such as EMFILE
  ReadableWait<Acceptor> pending{[](Acceptor& a, const error_code& ec) {
    if (!ec) accept(a.shared_from_this());
  }};
  int fd = -1;           // bound and listening, until the worker assigns it to `listening`
  bool stopped = false;  // on the worker's thread: stop() came, perhaps before the first accept
  std::shared_ptr<const ListenerSpec> spec;  // touched on the worker's thread only once started

  static void begin(const std::shared_ptr<Acceptor>& a);
  static void accept(const std::shared_ptr<Acceptor>& a);
};

namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// socket (non-blocking: accept4 runs until EAGAIN), SO_REUSEADDR + SO_REUSEPORT (every worker binds
// the same address), TCP_NODELAY as the listener's config says, TCP_INQ, bind, listen. Every
// socket accept(2) returns inherits TCP_NODELAY and TCP_INQ from the listening socket (Linux
// copies the options into it): set here, they cost no system call per channel.
int listening_socket(const tcp::endpoint& at, bool nodelay) {
  const int fd =
      ::socket(at.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) fail("socket");
  auto close_on_error = [fd](const char* what) {
    const int err = errno;
    ::close(fd);
    errno = err;
    fail(what);
  };
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    close_on_error("setsockopt(SO_REUSEADDR)");
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    close_on_error("setsockopt(SO_REUSEPORT)");
  if (at.address().is_v6() && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    close_on_error("setsockopt(IPV6_V6ONLY)");
  if (!set_tcp_flag(fd, TCP_NODELAY, nodelay)) close_on_error("setsockopt(TCP_NODELAY)");
  set_tcp_flag(fd, TCP_INQ, true);  // a hint, may fail: see receive() in channel.cpp
  if (::bind(fd, at.data(), static_cast<socklen_t>(at.size())) != 0) close_on_error("bind");
  if (::listen(fd, SOMAXCONN) != 0) close_on_error("listen");
  return fd;
}

}  // namespace

Listener::Listener(const std::vector<std::unique_ptr<Worker>>& workers,
                   std::shared_ptr<const ListenerSpec> spec)
    : spec_(std::move(spec)), address_(spec_->config.listen) {
  for (const auto& w : workers) {
    auto a = std::make_shared<Acceptor>(*w, spec_);
    a->fd = listening_socket(address_, spec_->config.nodelay);
    // Port 0 picks a free port once; the other workers join the same one.
    if (address_.port() == 0) {
      tcp::endpoint bound = address_;
      socklen_t len = static_cast<socklen_t>(bound.capacity());
      if (::getsockname(a->fd, bound.data(), &len) != 0) fail("getsockname");
      bound.resize(len);
      address_ = bound;
    }
    acceptors_.push_back(std::move(a));
  }
}

Listener::~Listener() {
  stop();
}

void Listener::start() {
  if (started_) return;
  started_ = true;
  for (auto& a : acceptors_) a->worker.post([a] { Acceptor::begin(a); });
}

void Listener::update(std::shared_ptr<const ListenerSpec> spec) {
  spec_ = spec;
  for (auto& a : acceptors_)
    a->worker.post([a, spec] {
      a->spec = spec;
      const int fd = a->listening.is_open() ? a->listening.native_handle() : a->fd;
      if (fd >= 0 && !set_tcp_flag(fd, TCP_NODELAY, spec->config.nodelay))
        spdlog::warn("{}: cannot set TCP_NODELAY for new channels: {}", spec->config.name,
                     std::system_category().message(errno));
    });
}

void Listener::stop() {
  for (auto& a : acceptors_)
    a->worker.post([a] {
      a->stopped = true;
      error_code ec;
      a->pause.cancel();
      a->listening.close(ec);  // completes a pending wait with operation_aborted
    });
  acceptors_.clear();
}

namespace {

// Accepts this many clients at most before letting the worker's other handlers run.
constexpr int accept_burst = 32;

// accept(2) errors that belong to one queued connection, not to the listener: it left while
// queued (ECONNABORTED), or Linux passed on a network error already pending on it (the list in
// accept(2), which says to retry as after EAGAIN), or a firewall rule refused it (EPERM).
bool lost_before_accept(int err) {
  switch (err) {
    case ECONNABORTED:
    case ENETDOWN:
    case EPROTO:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Listener::Acceptor::begin(const std::shared_ptr<Acceptor>& a) {
  if (a->stopped) return;
  error_code ec;
  a->listening.assign(a->spec->config.listen.protocol(), a->fd, ec);
  if (ec) {
    spdlog::error("{}: cannot accept: {}", a->spec->config.name, ec.message());
    return;
  }
  a->fd = -1;  // `listening` owns it now
  accept(a);
}

void Listener::Acceptor::accept(const std::shared_ptr<Acceptor>& a) {
  for (int n = 0; n < accept_burst; ++n) {
    if (a->stopped || !a->listening.is_open()) return;
    tcp::endpoint peer;  // filled by accept4 itself: no getpeername per channel
    auto len = static_cast<socklen_t>(peer.capacity());
    const int fd =
        ::accept4(a->listening.native_handle(), peer.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      // EAGAIN: ReadableWait's contract.
      if (err == EAGAIN || err == EWOULDBLOCK)
        return a->pending.start(a->worker.reactor, a->listening, a);
      if (err == EINTR) continue;
      if (lost_before_accept(err)) {
        spdlog::debug("{}: a queued client was lost before accept: {}", a->spec->config.name,
                      std::system_category().message(err));
        continue;
      }
      // Out of file descriptors or memory: back off instead of spinning; the pending
      // connection stays in the backlog until a channel closes.
      spdlog::warn("{}: accept failed: {}", a->spec->config.name,
                   std::system_category().message(err));
      a->pause.expires_after(std::chrono::milliseconds(100));
      a->pause.async_wait([a](const error_code& ec) {
        if (!ec) accept(a);
      });
      return;
    }
    peer.resize(len);
    Socket client(a->worker.io);
    error_code ec;
    adopt(client, peer.protocol(), fd, ec);
    if (ec) {
      spdlog::error("{}: cannot start a channel: {}", a->spec->config.name, ec.message());
      continue;
    }
    try {
      Channel::start(a->worker, std::move(client), peer, a->spec);
    } catch (const std::exception& e) {
      // Out of memory for one channel: drop that client, keep accepting.
      spdlog::error("{}: cannot start a channel: {}", a->spec->config.name, e.what());
    }
  }
  asio::post(a->worker.io, [a] { accept(a); });
}

}  // namespace sluice
