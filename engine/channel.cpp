#include "channel.hpp"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"

namespace sluice {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::atomic<std::uint64_t> next_channel_id{0};

std::string peer_of(const tcp::socket& s) {
  error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? std::string("?") : to_string(ep);
}

std::string describe(Clock::duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms % 1000 ? std::to_string(ms) + "ms" : std::to_string(ms / 1000) + "s";
}

bool would_block(const error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

}  // namespace

void Channel::start(Worker& worker, tcp::socket client, std::shared_ptr<const ListenerSpec> spec) {
  auto ch = std::make_shared<Channel>(worker, std::move(client), std::move(spec));
  asio::co_spawn(worker.io, ch->run(ch), asio::detached);
}

Channel::Channel(Worker& worker, tcp::socket client, std::shared_ptr<const ListenerSpec> spec)
    : spec_(std::move(spec)),
      worker_(worker),
      id_(++next_channel_id),
      client_(std::move(client)),
      upstream_(worker.io),
      client_address_(peer_of(client_)),
      target_(spec_->config.upstream),
      started_(Clock::now()),
      last_activity_(started_),
      idle_(worker.io),
      flows_{Flow(worker.io), Flow(worker.io)},
      pipeline_(*this, worker.pool) {
  if (target_) upstream_address_ = target_->str();
  worker_.channels.push_back(*this);
  ++worker_.live;
}

Channel::~Channel() {
  --worker_.live;
}

// `keep_alive` holds the channel for as long as its coroutine runs.
asio::awaitable<void> Channel::run(std::shared_ptr<Channel> /*keep_alive*/) {
  using namespace asio::experimental::awaitable_operators;
  try {
    error_code ec;
    client_.non_blocking(true, ec);
    if (spec_->config.nodelay) client_.set_option(tcp::no_delay(true), ec);
    spdlog::debug("ch{} {}: accepted {}", id_, spec_->config.name, client_address_);
    opening_ = true;
    pipeline_.open(spec_->stages);
    opening_ = false;
    if (!closing_ && connect_ == Connect::none) begin_connect();
    if (!closing_ && spec_->config.idle_timeout.count() > 0) arm_idle(spec_->config.idle_timeout);
    co_await (pump(Direction::upstream) && pump(Direction::downstream));
  } catch (const std::exception& e) {
    close(std::string("internal error: ") + e.what(), true);
  }
  finish();
}

asio::awaitable<void> Channel::wait(Flow& f) {
  f.wake.expires_at(Clock::time_point::max());
  co_await f.wake.async_wait(use_tuple);
}

asio::awaitable<void> Channel::pump(Direction dir) {
  Flow& f = flow(dir);
  tcp::socket& src = source(dir);
  const auto high = spec_->config.high_watermark;
  const char* const side = dir == Direction::upstream ? "client" : "upstream";
  // The upstream's bytes can only flow once it is connected (or never, see emit_end).
  while (!closing_ && !f.source_done && dir == Direction::downstream &&
         connect_ != Connect::connected)
    co_await wait(f);
  int burst = 0;
  while (!closing_ && !f.source_done) {
    if (f.queued >= high) f.full = true;
    if (pipeline_.holding(dir) || f.full) {
      co_await wait(f);
      continue;
    }
    Chunk chunk = worker_.pool.take();
    error_code ec;
    const std::size_t n = src.read_some(asio::buffer(chunk.data(), chunk.capacity()), ec);
    if (would_block(ec)) {
      // Idle: give the buffer back before waiting, so an idle channel holds none.
      worker_.pool.give(std::move(chunk));
      burst = 0;
      auto [wait_ec] = co_await src.async_wait(tcp::socket::wait_read, use_tuple);
      if (wait_ec && !closing_)
        close(std::string(side) + " wait failed: " + wait_ec.message(), true);
      continue;
    }
    if (ec == asio::error::eof) {
      worker_.pool.give(std::move(chunk));
      f.source_done = true;
      if (!first_end_) first_end_ = side;
      pipeline_.end(dir);
      break;
    }
    if (ec) {
      worker_.pool.give(std::move(chunk));
      if (!closing_) close(std::string(side) + " read failed: " + ec.message(), true);
      break;
    }
    chunk.resize(n);
    f.read += n;
    last_activity_ = Clock::now();
    pipeline_.data(dir, std::move(chunk));
    // A fast source and a fast sink never block: let the worker's other channels run too.
    if (++burst == 16) {
      burst = 0;
      co_await asio::post(worker_.io, asio::use_awaitable);
    }
  }
  // Done reading; this direction is over once its FIN has gone out.
  while (!closing_ && !f.shut) co_await wait(f);
}

void Channel::emit(Direction dir, Chunk&& chunk) {
  Flow& f = flow(dir);
  if (f.end_emitted) {
    // The sink's FIN is on its way; these bytes can no longer be delivered in order.
    worker_.pool.give(std::move(chunk));
    return close("a middleware sent " + std::string(to_string(dir)) +
                     " bytes after that direction's half-close",
                 true);
  }
  f.queued += chunk.size();
  // A small chunk joins the last queued one if it fits, so a stream of small reads towards a
  // slow sink holds about `queued` bytes of memory, not one whole buffer per read.
  if (!f.queue.empty() && chunk.size() <= chunk.capacity() / 8 &&
      f.queue.back().capacity() - f.queue.back().size() >= chunk.size()) {
    f.queue.back().append(chunk.view());
    worker_.pool.give(std::move(chunk));
  } else {
    f.queue.push_back(std::move(chunk));
  }
  if (!f.writing && sink_ready(dir)) write(dir);
}

// Writes what is queued without blocking; if the socket is full, waits for it to drain and goes
// on from the completion handler. Gives each chunk back to the pool once written.
void Channel::write(Direction dir) {
  Flow& f = flow(dir);
  tcp::socket& dst = sink(dir);
  const auto low = spec_->config.low_watermark;
  while (f.head < f.queue.size() && !closing_) {
    Chunk& c = f.queue[f.head];
    error_code ec;
    const std::size_t n =
        dst.write_some(asio::buffer(c.data() + f.offset, c.size() - f.offset), ec);
    if (would_block(ec)) {
      f.writing = true;
      dst.async_wait(tcp::socket::wait_write, [self = shared_from_this(), dir](error_code wec) {
        Flow& fl = self->flow(dir);
        fl.writing = false;
        if (self->closing_) return;
        if (wec) return self->close("write wait failed: " + wec.message(), true);
        self->write(dir);
      });
      break;
    }
    if (ec) {
      const char* to = dir == Direction::upstream ? "upstream" : "client";
      return close(std::string("write to ") + to + " failed: " + ec.message(), true);
    }
    f.offset += n;
    f.written += n;
    f.queued -= n;
    last_activity_ = Clock::now();
    if (f.offset == c.size()) {
      worker_.pool.give(std::move(c));
      ++f.head;
      f.offset = 0;
    }
  }
  if (f.head == f.queue.size()) {
    f.queue.clear();
    f.head = 0;
  } else if (f.head >= 32) {
    // A sink that never quite catches up never empties the queue: drop the spent slots.
    f.queue.erase(f.queue.begin(), f.queue.begin() + static_cast<std::ptrdiff_t>(f.head));
    f.head = 0;
  }
  if (f.full && f.queued <= low) {
    f.full = false;
    f.wake.cancel();
  }
  if (f.queued == 0 && f.end_emitted && !closing_) shut_sink(dir);
}

void Channel::shut_sink(Direction dir) {
  Flow& f = flow(dir);
  if (f.shut) return;
  f.shut = true;
  error_code ec;
  sink(dir).shutdown(tcp::socket::shutdown_send, ec);
  f.wake.cancel();
}

void Channel::emit_end(Direction dir) {
  Flow& f = flow(dir);
  f.end_emitted = true;
  if (dir == Direction::upstream && (connect_ == Connect::none || connect_ == Connect::deferred)) {
    // The client finished before any upstream was connected, and none will be now: nothing can
    // answer it except the middlewares, so the reply direction ends here too.
    f.shut = true;
    f.wake.cancel();
    Flow& down = flow(Direction::downstream);
    down.source_done = true;
    down.wake.cancel();
    pipeline_.end(Direction::downstream);
    return;
  }
  if (!f.writing && f.queued == 0 && sink_ready(dir)) shut_sink(dir);
}

void Channel::set_upstream(std::string_view host_port) {
  if (connect_ != Connect::none && connect_ != Connect::deferred)
    throw std::logic_error("set_upstream: the upstream connect has already started");
  target_ = parse_host_port(host_port);
  if (target_->port == 0) throw std::invalid_argument("set_upstream: port 0");
  upstream_address_ = target_->str();
}

void Channel::defer_connect() {
  if (!opening_ || connect_ != Connect::none)
    throw std::logic_error("defer_connect: only allowed in on_open");
  connect_ = Connect::deferred;
}

void Channel::connect_upstream() {
  if (connect_ == Connect::deferred || (connect_ == Connect::none && !opening_)) begin_connect();
}

void Channel::begin_connect() {
  if (closing_) return;
  if (!target_) return close("no upstream: the listener has none and no middleware set one", false);
  connect_ = Connect::pending;
  // `detached` would drop an exception (bad_alloc, no thread for the resolver) and leave the
  // channel waiting for a connect that never ends.
  asio::co_spawn(worker_.io, connect(shared_from_this()),
                 [self = shared_from_this()](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& x) {
                     self->close(std::string("upstream connect failed: ") + x.what(), true);
                   }
                 });
}

asio::awaitable<void> Channel::connect(std::shared_ptr<Channel> keep_alive) {
  const HostPort target = *target_;
  const auto timeout = spec_->config.connect_timeout;
  // The deadline is a timer of its own that closes the channel, not `||` with the attempt: a
  // host-name lookup cannot be cancelled (getaddrinfo on Asio's resolver thread), and `||` would
  // wait for it however long the DNS server takes.
  auto deadline = std::make_shared<asio::steady_timer>(worker_.io, timeout);
  deadline->async_wait([self = keep_alive, deadline, target, timeout](error_code ec) {
    if (ec || self->closing_ || self->connect_ != Connect::pending) return;
    self->close("upstream " + target.str() + ": connect timed out after " + describe(timeout),
                true);
  });
  auto attempt = [&]() -> asio::awaitable<error_code> {
    if (target.endpoint) {
      auto [ec] = co_await upstream_.async_connect(*target.endpoint, use_tuple);
      co_return ec;
    }
    tcp::resolver resolver(worker_.io);
    auto [rec, results] =
        co_await resolver.async_resolve(target.host, std::to_string(target.port), use_tuple);
    if (rec) co_return rec;
    // The channel may have closed (deadline, drain) while the lookup ran.
    if (closing_) co_return asio::error::operation_aborted;
    auto [ec, ep] = co_await asio::async_connect(upstream_, results, use_tuple);
    co_return ec;
  };
  const error_code failed = co_await attempt();
  deadline->cancel();
  if (closing_) co_return;
  if (failed) {
    co_return close("upstream " + target.str() + ": connect failed: " + failed.message(), true);
  }
  error_code ec;
  upstream_.non_blocking(true, ec);
  if (spec_->config.nodelay) upstream_.set_option(tcp::no_delay(true), ec);
  upstream_address_ = peer_of(upstream_);
  connect_ = Connect::connected;
  spdlog::debug("ch{} {}: connected to {}", id_, spec_->config.name, upstream_address_);
  flow(Direction::downstream).wake.cancel();
  pipeline_.connected();
  if (closing_) co_return;
  Flow& up = flow(Direction::upstream);
  if (!up.queue.empty())
    write(Direction::upstream);
  else if (up.end_emitted)
    shut_sink(Direction::upstream);
}

void Channel::arm_idle(Clock::duration after) {
  idle_.expires_after(after);
  idle_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || self->closing_) return;
    const auto limit = self->spec_->config.idle_timeout;
    const auto idle = Clock::now() - self->last_activity_;
    if (idle >= limit) return self->close("idle timeout (" + describe(limit) + ")", false);
    self->arm_idle(limit - idle);
  });
}

void Channel::close(std::string_view reason, bool reset) {
  if (closing_) return;
  closing_ = true;
  reason_ = std::string(reason);
  pipeline_.mark_closed();
  error_code ec;
  // Bytes still queued are lost: a FIN would tell the peer the stream ended complete.
  if (flows_[0].queued || flows_[1].queued) reset = true;
  if (reset) {
    // An error mid-stream: make both peers see an abort (RST), not a clean end of data.
    client_.set_option(tcp::socket::linger(true, 0), ec);
    if (upstream_.is_open()) upstream_.set_option(tcp::socket::linger(true, 0), ec);
  }
  client_.close(ec);
  upstream_.close(ec);
  for (Flow& f : flows_) f.wake.cancel();
  idle_.cancel();
  timers_.clear();
}

void Channel::finish() {
  const bool clean = !closing_;
  if (clean) close(first_end_ ? std::string(first_end_) + " closed" : "closed", false);
  const Flow& up = flow(Direction::upstream);
  const Flow& down = flow(Direction::downstream);
  CloseInfo info{reason_,
                 !upstream_address_.empty() && connect_ == Connect::connected,
                 up.read,
                 up.written,
                 down.read,
                 down.written,
                 Clock::now() - started_};
  pipeline_.close(info);
  idle_.cancel();
  timers_.clear();  // any a middleware started from on_close
  spdlog::log(clean ? spdlog::level::debug : spdlog::level::info,
              "ch{} {}: closed: {} (client {} -> {}: {} B up, {} B down)", id_, spec_->config.name,
              reason_, client_address_, upstream_address_.empty() ? "-" : upstream_address_,
              up.read, down.read);
  unlink();
}

TimerId Channel::start_timer(Clock::duration after, std::function<void()> fire) {
  const TimerId id = ++last_timer_;
  if (closing_) return id;  // would never fire; don't keep the channel alive for it
  auto [it, _] = timers_.try_emplace(id, worker_.io, after);
  it->second.async_wait([self = shared_from_this(), id, fire = std::move(fire)](error_code ec) {
    // erase() == 0: cancelled after it had already expired, with this handler queued.
    if (ec || self->closing_ || self->timers_.erase(id) == 0) return;
    fire();
  });
  return id;
}

void Channel::cancel_timer(TimerId id) {
  timers_.erase(id);
}

void Channel::log(Level level, std::string_view type, std::string_view message) {
  spdlog::log(to_spdlog(level), "ch{} {} {}: {}", id_, spec_->config.name, type, message);
}

bool Channel::log_enabled(Level level) const {
  return spdlog::should_log(to_spdlog(level));
}

}  // namespace sluice
