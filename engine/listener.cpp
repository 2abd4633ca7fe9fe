#include "listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "channel.hpp"
#include "log.hpp"

namespace sluice {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// The listening socket is made with plain system calls on the thread that binds (so a bad
// address fails there, at once) and handed to the worker's acceptor only on the worker's own
// thread: the worker's reactor runs without per-socket locks
// (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) and must never see another thread register, use or drop
// one of its sockets.
struct Listener::Acceptor {
  Acceptor(Worker& w, std::shared_ptr<const ListenerSpec> s)
      : worker(w), acceptor(w.io), spec(std::move(s)) {}
  ~Acceptor() {
    if (fd >= 0) ::close(fd);  // never handed over
  }
  Worker& worker;
  tcp::acceptor acceptor;
  int fd = -1;           // bound and listening, until the worker assigns it to `acceptor`
  bool stopped = false;  // on the worker's thread: stop() came, perhaps before the first accept
  std::shared_ptr<const ListenerSpec> spec;  // touched on the worker's thread only once started
};

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<Listener::Acceptor> a);

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Every socket accept(2) returns inherits TCP_NODELAY from the listening socket (Linux copies
// the option into it): set here, it costs no system call per channel.
bool set_nodelay(int fd, bool on) {
  const int value = on;
  return ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof value) == 0;
}

// socket, SO_REUSEADDR + SO_REUSEPORT (every worker binds the same address), TCP_NODELAY as the
// listener's config says, bind, listen.
int listening_socket(const tcp::endpoint& at, bool nodelay) {
  const int fd = ::socket(at.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
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
  if (!set_nodelay(fd, nodelay)) close_on_error("setsockopt(TCP_NODELAY)");
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
  for (auto& a : acceptors_)
    a->worker.post([a] { asio::co_spawn(a->worker.io, accept_loop(a), asio::detached); });
}

void Listener::update(std::shared_ptr<const ListenerSpec> spec) {
  spec_ = spec;
  for (auto& a : acceptors_)
    a->worker.post([a, spec] {
      a->spec = spec;
      const int fd = a->acceptor.is_open() ? a->acceptor.native_handle() : a->fd;
      if (fd >= 0 && !set_nodelay(fd, spec->config.nodelay))
        spdlog::warn("{}: cannot set TCP_NODELAY for new channels: {}", spec->config.name,
                     std::system_category().message(errno));
    });
}

void Listener::stop() {
  for (auto& a : acceptors_)
    a->worker.post([a] {
      a->stopped = true;
      error_code ec;
      a->acceptor.close(ec);
    });
  acceptors_.clear();
}

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<Listener::Acceptor> a) {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  if (a->stopped) co_return;
  {
    error_code ec;
    const tcp::endpoint at = a->spec->config.listen;
    a->acceptor.assign(at.protocol(), a->fd, ec);
    if (ec) {
      spdlog::error("{}: cannot accept: {}", a->spec->config.name, ec.message());
      co_return;
    }
    a->fd = -1;  // the acceptor owns it now
  }
  tcp::endpoint peer;  // filled by accept(2) itself: no getpeername per channel
  for (;;) {
    auto [ec, socket] = co_await a->acceptor.async_accept(a->worker.io, peer, use_tuple);
    if (!a->acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of file descriptors (or a transient error): back off instead of spinning; the
      // pending connection stays in the backlog until a channel closes.
      spdlog::warn("{}: accept failed: {}", a->spec->config.name, ec.message());
      asio::steady_timer pause(a->worker.io, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    try {
      Channel::start(a->worker, std::move(socket), peer, a->spec);
    } catch (const std::exception& e) {
      // Out of memory for one channel: drop that client, keep accepting.
      spdlog::error("{}: cannot start a channel: {}", a->spec->config.name, e.what());
    }
  }
}

}  // namespace

}  // namespace sluice
