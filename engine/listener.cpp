#include "listener.hpp"

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

struct Listener::Acceptor {
  Acceptor(Worker& w, std::shared_ptr<const ListenerSpec> s)
      : worker(w), acceptor(w.io), spec(std::move(s)) {}
  Worker& worker;
  tcp::acceptor acceptor;
  std::shared_ptr<const ListenerSpec> spec;  // touched on the worker's thread only once started
};

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<Listener::Acceptor> a);

}  // namespace

Listener::Listener(const std::vector<std::unique_ptr<Worker>>& workers,
                   std::shared_ptr<const ListenerSpec> spec)
    : spec_(std::move(spec)), address_(spec_->config.listen) {
  for (const auto& w : workers) {
    auto a = std::make_shared<Acceptor>(*w, spec_);
    auto& acc = a->acceptor;
    acc.open(address_.protocol());
    acc.set_option(tcp::acceptor::reuse_address(true));
    int one = 1;
    if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      throw std::system_error(errno, std::generic_category(), "setsockopt(SO_REUSEPORT)");
    if (address_.address().is_v6()) acc.set_option(asio::ip::v6_only(true));
    acc.bind(address_);
    acc.listen(asio::socket_base::max_listen_connections);
    // Port 0 picks a free port once; the other workers join the same one.
    if (address_.port() == 0) address_ = acc.local_endpoint();
    acceptors_.push_back(std::move(a));
  }
}

Listener::~Listener() {
  stop();
}

void Listener::start() {
  if (started_) return;
  started_ = true;
  for (auto& a : acceptors_) asio::co_spawn(a->worker.io, accept_loop(a), asio::detached);
}

void Listener::update(std::shared_ptr<const ListenerSpec> spec) {
  spec_ = spec;
  for (auto& a : acceptors_) asio::post(a->worker.io, [a, spec] { a->spec = spec; });
}

void Listener::stop() {
  for (auto& a : acceptors_)
    asio::post(a->worker.io, [a] {
      error_code ec;
      a->acceptor.close(ec);
    });
  acceptors_.clear();
}

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<Listener::Acceptor> a) {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
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
