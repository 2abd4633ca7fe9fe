#include "channel.hpp"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cstring>

#include "log.hpp"
#include "tcp_flag.hpp"

namespace sluice {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

std::atomic<std::uint64_t> next_channel_id{0};

std::string describe(Clock::duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms % 1000 ? std::to_string(ms) + "ms" : std::to_string(ms / 1000) + "s";
}

const char* side_of(Direction dir) {
  return dir == Direction::upstream ? "client" : "upstream";
}
const char* sink_of(Direction dir) {
  return dir == Direction::upstream ? "upstream" : "client";
}

// The data path calls recv/send itself: Asio's wrappers cost an error_code round trip per call.
// Through syscall(2), not libc's recv/send: those are thread cancellation points, which sluice
// never uses, and each call pays for switching cancellation on and off around the system call.
// Both return -1 with errno EAGAIN when the socket has nothing to give or no room.
//
// receive() also says whether the socket had nothing left when it returned: TCP_INQ (set on the
// listening socket, which accept passes on, and on each upstream socket) has the kernel append
// the bytes still queued, counting a FIN that came as one. Zero means a park is safe at once,
// without the read that would only return EAGAIN: the next byte or FIN raises an edge of its
// own (an RST is not counted: drained_read_may_park in readable_wait.hpp). Without the hint (a
// kernel older than 4.18) `drained` stays false and reads go on to EAGAIN.
ssize_t receive(Socket& s, char* p, std::size_t n, bool& drained) {
  iovec iov{p, n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t r;
  do {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    r = ::syscall(SYS_recvmsg, s.native_handle(), &msg, 0);
  } while (r < 0 && errno == EINTR);
  drained = false;
  if (r > 0)
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ) {
        int queued;
        std::memcpy(&queued, CMSG_DATA(c), sizeof queued);
        drained = queued == 0;
      }
  return r;
}
ssize_t transmit(Socket& s, const char* p, std::size_t n) {
  ssize_t r;
  do r = ::syscall(SYS_sendto, s.native_handle(), p, n, MSG_NOSIGNAL, nullptr, 0);
  while (r < 0 && errno == EINTR);
  return r;
}
bool would_block(int err) {
  return err == EAGAIN || err == EWOULDBLOCK;
}

// A fast source and a fast sink never block: after this many reads in a row a direction lets the
// worker's other channels run.
constexpr int read_burst = 16;
// A read at least this large marks a bulk transfer: where the chain allows, the next reads of that
// direction splice, until one is smaller than a page (request/response traffic, cheaper copied).
// Between the two the direction keeps its mode, so a loaded machine's uneven reads don't flip it.
constexpr std::size_t bulk_read = 16 * 1024;
constexpr std::size_t small_read = 4 * 1024;

bool still_bulk(bool bulk, std::size_t n) {
  return n >= bulk_read || (bulk && n >= small_read);
}

std::string system_message(int err) {
  return std::system_category().message(err);
}

error_code system_error_code(int err) {
  return error_code(err, asio::error::get_system_category());
}

// What a non-blocking connect to `ep` came to, asked right after it said EINPROGRESS or once its
// socket reported writable; nullopt while it is still going on. A second connect(2) tells, at
// the cost getsockopt(SO_ERROR) had: SO_ERROR is 0 both when connected and when still
// connecting, and a readiness may not be the connect's (Asio reuses a closed socket's reactor
// state, and an event already taken for the old socket can still run on it).
std::optional<error_code> connect_outcome(Socket& s, const tcp::endpoint& ep) {
  if (::connect(s.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0 ||
      errno == EISCONN)
    return error_code{};
  if (errno == EALREADY || errno == EINPROGRESS || errno == EINTR) return std::nullopt;
  return system_error_code(errno);
}

}  // namespace

void Channel::start(Worker& worker, Socket client, const tcp::endpoint& peer,
                    std::shared_ptr<const ListenerSpec> spec) {
  auto ch = std::make_shared<Channel>(worker, std::move(client), peer, std::move(spec));
  ch->self_ = ch;
  ch->open();
}

Channel::Channel(Worker& worker, Socket client, const tcp::endpoint& peer,
                 std::shared_ptr<const ListenerSpec> spec)
    : spec_(std::move(spec)),
      worker_(worker),
      blind_(spec_->blind),
      splices_(spec_->splices()),
      id_(++next_channel_id),
      client_(std::move(client)),
      upstream_(worker.io),
      client_ep_(peer),
      started_(Clock::now()),
      last_activity_(started_),
      timer_(worker.io),
      pipeline_(*this, worker.pool) {
  worker_.channels.push_back(*this);
  ++worker_.live;
}

Channel::~Channel() {
  --worker_.live;
}

void Channel::open() {
  try {
    // accept4 made the socket non-blocking; TCP_NODELAY and TCP_INQ came from the listening socket.
    if (spdlog::should_log(spdlog::level::debug))
      spdlog::debug("ch{} {}: accepted {}", id_, spec_->config.name, client_address());
    opening_ = true;
    pipeline_.open(spec_->stages);
    opening_ = false;
    if (!closing_ && connect_ == Connect::none) begin_connect();
    arm_timer();
    read(Direction::upstream);
  } catch (const std::exception& e) {
    opening_ = false;
    close(std::string("internal error: ") + e.what(), true);
  }
}

// Reads the source of `dir` until it would block, then parks as one readiness wait. Stops
// (without a pending wait) while the sink's queue is full, the pipe waits for the sink or a
// middleware holds: wake() or the sink's writer restarts it.
void Channel::read(Direction dir) {
  Flow& f = flow(dir);
  if (f.reading || closing_ || f.source_done) return;
  if (dir == Direction::downstream && connect_ != Connect::connected) return;
  Socket& src = source(dir);
  f.reading = true;
  bool drained = false;  // the last read left the socket empty, with no FIN (see receive())
  for (int burst = 0;; ++burst) {
    if (closing_ || f.source_done) break;
    if (f.queued >= spec_->config.high_watermark) f.full = true;
    if (f.full || f.piped || pipeline_.holding(dir)) break;
    // A short read alone does not allow a park: a FIN or an RST that came with the last bytes
    // raised no edge of its own, and a park (which does not re-arm epoll) would wait forever.
    if (drained && drained_read_may_park(src)) return park(dir);
    if (burst == read_burst) {
      asio::post(worker_.io, [self = shared_from_this(), dir] {
        self->flow(dir).reading = false;
        self->guarded([&] { self->read(dir); });
      });
      return;
    }
    // Splice only with nothing queued before it, so bytes keep their order.
    if (f.bulk && f.queue.empty() && !f.writing && sink_ready(dir)) {
      if (!f.pipe) f.pipe = worker_.pipes.take();
      if (f.pipe) {
        const Step step = splice_round(dir);
        if (step == Step::parked) return;
        if (step == Step::stop) break;
        continue;
      }
    }
    if (f.pipe) worker_.pipes.give(std::move(f.pipe), true);
    // No middleware reads the bytes and none wait for the sink: read into the worker's scratch
    // buffer and write them straight on. A pooled chunk takes only what the sink refuses.
    const bool direct = blind_ && f.queue.empty() && !f.writing && sink_ready(dir);
    Chunk chunk;
    if (!direct) chunk = worker_.pool.take();
    char* const buf = direct ? worker_.scratch.get() : chunk.data();
    const std::size_t cap = direct ? worker_.pool.chunk_size() : chunk.capacity();
    const ssize_t got = receive(src, buf, cap, drained);
    if (got <= 0) {
      const int err = got == 0 ? 0 : errno;
      // Idle: the buffer goes back before waiting, so an idle channel holds none.
      if (!direct) worker_.pool.give(std::move(chunk));
      if (would_block(err)) return park(dir);
      if (got == 0) return source_ended(dir);
      close(std::string(side_of(dir)) + " read failed: " + system_message(err), true);
      break;
    }
    const auto n = static_cast<std::size_t>(got);
    f.read += n;
    f.bulk = splices_ && still_bulk(f.bulk, n);
    last_activity_ = Clock::now();
    if (direct) {
      const auto sent = send_now(dir, buf, n);
      if (sent && *sent < n) {
        Chunk rest = worker_.pool.take();
        rest.assign({buf + *sent, n - *sent});
        enqueue(dir, std::move(rest), 0);
      }
      continue;
    }
    chunk.resize(n);
    if (blind_)
      emit(dir, std::move(chunk));
    else
      pipeline_.data(dir, std::move(chunk));
  }
  f.reading = false;
}

// Waits for the source of `dir` to become readable; f.reading stays set until then. Every park
// follows a read of that socket that would block (ReadableWait's contract).
void Channel::park(Direction dir) {
  read_wait_[dir == Direction::upstream ? 0 : 1].start(worker_.reactor, source(dir),
                                                       shared_from_this());
}

void Channel::on_readable(Direction dir, const error_code& ec) {
  flow(dir).reading = false;
  if (closing_) return;
  guarded([&] {
    if (ec) return close(std::string(side_of(dir)) + " wait failed: " + ec.message(), true);
    read(dir);
  });
}

void Channel::source_ended(Direction dir) {
  Flow& f = flow(dir);
  f.source_done = true;
  f.reading = false;
  if (!first_end_) first_end_ = side_of(dir);
  pipeline_.end(dir);
  check_done();
}

// One round of a bulk direction: what the source has, into the (empty) pipe, and from the pipe
// on to the sink, never through user space.
Channel::Step Channel::splice_round(Direction dir) {
  Flow& f = flow(dir);
  // No more in flight than the watermark allows (a small high_watermark bounds the pipe too).
  const std::size_t want = std::min<std::size_t>(f.pipe.capacity(), spec_->config.high_watermark);
  const ssize_t n = ::splice(source(dir).native_handle(), nullptr, f.pipe.write_end(), nullptr,
                             want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    f.read += static_cast<std::size_t>(n);
    f.spliced += static_cast<std::size_t>(n);
    f.piped = static_cast<std::size_t>(n);
    f.bulk = still_bulk(f.bulk, static_cast<std::size_t>(n));
    last_activity_ = Clock::now();
    return drain_pipe(dir) ? Step::more : Step::stop;
  }
  const int err = n == 0 ? 0 : errno;
  if (err == EINTR) return Step::more;
  // Nothing in flight: the pipe goes back to the pool until the next burst.
  worker_.pipes.give(std::move(f.pipe), true);
  if (n == 0) {
    // Not always the end: TCP's splice also stops at urgent data. recv tells them apart.
    f.bulk = false;
    return Step::more;
  }
  if (err == EAGAIN) {
    park(dir);
    return Step::parked;
  }
  close(std::string(side_of(dir)) + " read failed: " + system_message(err), true);
  return Step::stop;
}

// Moves the pipe's bytes on to the sink. True once the pipe is empty; false while a wait for the
// sink is pending (its handler drains the rest, then reads again) or when a failure closed the
// channel.
bool Channel::drain_pipe(Direction dir) {
  Flow& f = flow(dir);
  Socket& dst = sink(dir);
  while (f.piped) {
    const ssize_t n = ::splice(f.pipe.read_end(), nullptr, dst.native_handle(), nullptr, f.piped,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      f.piped -= static_cast<std::size_t>(n);
      f.written += static_cast<std::size_t>(n);
      continue;
    }
    const int err = n == 0 ? EPIPE : errno;
    if (err == EINTR) continue;
    if (would_block(err)) {
      wait_writable(dir);
      return false;
    }
    write_failed(dir, err);
    return false;
  }
  last_activity_ = Clock::now();
  return true;
}

// Restarts reading a parked direction, from a fresh stack: wake() comes from inside a hook
// (ctx.resume) or a write, where reading (and running the chain) again would nest.
void Channel::wake(Direction dir) {
  Flow& f = flow(dir);
  if (f.reading || closing_ || f.source_done) return;
  f.reading = true;
  asio::post(worker_.io, [self = shared_from_this(), dir] {
    self->flow(dir).reading = false;
    self->guarded([&] { self->read(dir); });
  });
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
  if (closing_) return worker_.pool.give(std::move(chunk));
  std::size_t done = 0;
  if (f.queue.empty() && !f.writing && sink_ready(dir)) {
    // Nothing waits before it: write it straight away, and queue only what the socket refuses.
    const auto sent = send_now(dir, chunk.data(), chunk.size());
    if (!sent || *sent == chunk.size()) return worker_.pool.give(std::move(chunk));
    done = *sent;
  }
  enqueue(dir, std::move(chunk), done);
}

// One send to the sink of `dir`, with nothing queued before it: the bytes it took (0 if it is
// full), or nothing once a failure has closed the channel. (The read that brought the bytes
// marked the activity.)
std::optional<std::size_t> Channel::send_now(Direction dir, const char* p, std::size_t n) {
  const ssize_t sent = transmit(sink(dir), p, n);
  if (sent < 0) {
    if (!would_block(errno)) {
      write_failed(dir, errno);
      return std::nullopt;
    }
    return 0;
  }
  flow(dir).written += static_cast<std::size_t>(sent);
  return static_cast<std::size_t>(sent);
}

// Queues `chunk` for the sink of `dir`, its first `done` bytes already written.
void Channel::enqueue(Direction dir, Chunk&& chunk, std::size_t done) {
  Flow& f = flow(dir);
  f.queued += chunk.size() - done;
  // A small chunk joins the last queued one if it fits, so a stream of small reads towards a
  // slow sink holds about `queued` bytes of memory, not one whole buffer per read.
  if (!f.queue.empty() && chunk.size() <= chunk.capacity() / 8 &&
      f.queue.back().capacity() - f.queue.back().size() >= chunk.size()) {
    f.queue.back().append(chunk.view());
    worker_.pool.give(std::move(chunk));
  } else {
    if (f.queue.empty()) f.offset = done;
    f.queue.push_back(std::move(chunk));
  }
  // Only a send_now that the sink refused gets here with no wait pending (a queue that is not
  // empty always has one): the socket is full, so wait for it instead of trying again at once.
  if (!f.writing && sink_ready(dir)) wait_writable(dir);
}

// Writes what is queued without blocking; if the socket is full, waits for it to drain and goes
// on from the completion handler. Gives each chunk back to the pool once written.
void Channel::write(Direction dir) {
  Flow& f = flow(dir);
  Socket& dst = sink(dir);
  while (f.head < f.queue.size() && !closing_) {
    Chunk& c = f.queue[f.head];
    const ssize_t sent = transmit(dst, c.data() + f.offset, c.size() - f.offset);
    if (sent < 0) {
      if (!would_block(errno)) return write_failed(dir, errno);
      wait_writable(dir);
      break;
    }
    const auto n = static_cast<std::size_t>(sent);
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
    f.offset = 0;
  } else if (f.head >= 32) {
    // A sink that never quite catches up never empties the queue: drop the spent slots.
    f.queue.erase(f.queue.begin(), f.queue.begin() + static_cast<std::ptrdiff_t>(f.head));
    f.head = 0;
  }
  after_write(dir);
}

// The sink of `dir` refused bytes: go on (pipe first, then the queue) once it takes more.
void Channel::wait_writable(Direction dir) {
  flow(dir).writing = true;
  sink(dir).async_wait(Socket::wait_write, [self = shared_from_this(), dir](error_code ec) {
    Flow& f = self->flow(dir);
    f.writing = false;
    if (self->closing_) return;
    self->guarded([&] {
      if (ec) return self->close("write wait failed: " + ec.message(), true);
      const bool piped = f.piped != 0;
      if (piped && !self->drain_pipe(dir)) return;
      // Bytes a middleware sent (from on_open, a timer) while the pipe waited go after it.
      self->write(dir);
      if (piped) self->read(dir);  // the pipe is empty: the source may fill it again
    });
  });
}

void Channel::write_failed(Direction dir, int err) {
  close(std::string("write to ") + sink_of(dir) + " failed: " + system_message(err), true);
}

void Channel::after_write(Direction dir) {
  Flow& f = flow(dir);
  if (closing_) return;
  if (f.full && f.queued <= spec_->config.low_watermark) {
    f.full = false;
    wake(dir);
  }
  if (f.queued == 0 && f.end_emitted) shut_sink(dir);
}

void Channel::shut_sink(Direction dir) {
  Flow& f = flow(dir);
  if (f.shut) return;
  f.shut = true;
  // The last direction to end needs no shutdown: close(), which follows at once, sends the FIN
  // (every byte the peer sent has been read, so closing does not reset). One system call less.
  if (!both_done()) {
    error_code ec;
    sink(dir).shutdown(Socket::shutdown_send, ec);
  }
  check_done();
}

void Channel::emit_end(Direction dir) {
  Flow& f = flow(dir);
  f.end_emitted = true;
  if (dir == Direction::upstream && (connect_ == Connect::none || connect_ == Connect::deferred)) {
    // The client finished before any upstream was connected, and none will be now: nothing can
    // answer it except the middlewares, so the reply direction ends here too.
    f.shut = true;
    Flow& down = flow(Direction::downstream);
    down.source_done = true;
    pipeline_.end(Direction::downstream);
    return check_done();
  }
  if (!f.writing && f.queued == 0 && sink_ready(dir)) shut_sink(dir);
}

void Channel::set_upstream(std::string_view host_port) {
  if (connect_ != Connect::none && connect_ != Connect::deferred)
    throw std::logic_error("set_upstream: the upstream connect has already started");
  HostPort target = parse_host_port(host_port);
  if (target.port == 0) throw std::invalid_argument("set_upstream: port 0");
  target_ = std::make_unique<HostPort>(std::move(target));
  upstream_address_.clear();
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
  const HostPort* target = upstream_target();
  if (!target) return close("no upstream: the listener has none and no middleware set one", false);
  connect_ = Connect::pending;
  connect_deadline_ = Clock::now() + spec_->config.connect_timeout;
  arm_timer();
  if (target->endpoint) return attempt(*target->endpoint);
  // A host name: looked up on the engine's lookup threads. A lookup cannot be cancelled, so the
  // connect deadline is the channel's own timer, which closes the channel without waiting for it.
  worker_.resolve(
      target->host, std::to_string(target->port),
      [self = shared_from_this()](const error_code& ec, std::vector<tcp::endpoint> endpoints) {
        if (self->closing_) return;
        self->guarded([&] {
          if (ec || endpoints.empty()) {
            return self->on_connect(ec ? ec : asio::error::host_not_found);
          }
          // Each address in turn, until one answers (as Asio's async_connect does).
          self->endpoints_ = std::move(endpoints);
          self->next_endpoint_ = 1;
          self->attempt(self->endpoints_.front());
        });
      });
}

// One connect of the upstream socket to `ep`, non-blocking, with a socket that socket(2) makes
// non-blocking and close-on-exec, and TCP_NODELAY set before the handshake. Asio's async_connect
// costs a system call more: a poll(2) when it is done.
// The outcome always comes through the worker's queue, never from inside this call: a connect
// may start inside a middleware's hook, and on_connected must not run under it.
void Channel::attempt(const tcp::endpoint& ep) {
  upstream_ep_ = ep;
  error_code ec;
  upstream_.close(ec);  // the previous address's socket, if any
  auto self = shared_from_this();
  auto report = [this, self](error_code result) {
    asio::post(worker_.io, [self, result] { self->guarded([&] { self->on_attempt(result); }); });
  };
  const int fd =
      ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return report(system_error_code(errno));
  if (spec_->config.nodelay) set_tcp_flag(fd, TCP_NODELAY, true);
  set_tcp_flag(fd, TCP_INQ, true);  // see receive(); a hint, may fail
  adopt(upstream_, ep.protocol(), fd, ec);
  if (ec) return report(ec);
  // A signal during a non-blocking connect leaves the connect going on, as EINPROGRESS does.
  if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) == 0) return report({});
  if (errno != EINPROGRESS && errno != EINTR) return report(system_error_code(errno));
  // A local upstream (loopback, another namespace on this host) has as a rule answered by the
  // time connect(2) returns: the SYN and SYN-ACK are handled in softirq inside the call, and the
  // SYN-ACK reaches the socket from its backlog as the call releases it. One more connect tells,
  // and saves the EPOLL_CTL_MOD that waiting for EPOLLOUT would add and a turn of the reactor.
  // The wait stays for the rest: a remote upstream (which pays this system call for nothing,
  // next to a network round trip), softirq work handed to ksoftirqd, RPS, a full SYN queue.
  if (const auto outcome = connect_outcome(upstream_, ep)) return report(*outcome);
  await_connect();
}

void Channel::await_connect() {
  upstream_.async_wait(Socket::wait_write, [self = shared_from_this()](error_code ec) {
    if (self->closing_) return;
    self->guarded([&] {
      if (ec) return self->on_attempt(ec);
      if (const auto outcome = connect_outcome(self->upstream_, self->upstream_ep_))
        return self->on_attempt(*outcome);
      self->await_connect();
    });
  });
}

void Channel::on_attempt(const error_code& ec) {
  if (closing_) return;
  if (ec && next_endpoint_ < endpoints_.size()) return attempt(endpoints_[next_endpoint_++]);
  endpoints_ = {};
  on_connect(ec);
}

void Channel::resolve(std::string_view host, std::string_view port, Context::Resolved done) {
  worker_.resolve(std::string(host), std::string(port), std::move(done));
}

void Channel::on_connect(const error_code& failed) {
  if (closing_) return;
  if (failed) {
    return close("upstream " + upstream_target()->str() + ": connect failed: " + failed.message(),
                 true);
  }
  connect_ = Connect::connected;
  upstream_address_.clear();
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug("ch{} {}: connected to {}", id_, spec_->config.name, upstream_address());
  pipeline_.connected();
  if (closing_) return;
  Flow& up = flow(Direction::upstream);
  // A middleware may have sent from on_connected and started a write wait already: that wait
  // goes on with the queue (and the FIN after it).
  if (!up.writing) {
    if (!up.queue.empty())
      write(Direction::upstream);
    else if (up.end_emitted)
      shut_sink(Direction::upstream);
  }
  // The upstream's bytes can only flow once it is connected.
  read(Direction::downstream);
}

// The connect deadline and the idle timeout share one timer, set to the earlier of the two.
void Channel::arm_timer() {
  if (closing_) return;
  auto next = Clock::time_point::max();
  if (connect_ == Connect::pending) next = connect_deadline_;
  const auto idle = spec_->config.idle_timeout;
  if (idle.count() > 0) next = std::min(next, last_activity_ + idle);
  if (next == Clock::time_point::max()) return;
  if (timer_armed_ && timer_.expiry() <= next) return;
  timer_armed_ = true;
  timer_.expires_at(next);  // a wait already pending ends with operation_aborted
  timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec == asio::error::operation_aborted) return;
    self->timer_armed_ = false;
    self->guarded([&] { self->on_timer(); });
  });
}

void Channel::on_timer() {
  if (closing_) return;
  const auto now = Clock::now();
  if (connect_ == Connect::pending && now >= connect_deadline_) {
    return close("upstream " + upstream_target()->str() + ": connect timed out after " +
                     describe(spec_->config.connect_timeout),
                 true);
  }
  const auto idle = spec_->config.idle_timeout;
  if (idle.count() > 0 && now - last_activity_ >= idle)
    return close("idle timeout (" + describe(idle) + ")", false);
  arm_timer();
}

void Channel::close(std::string_view reason, bool reset) {
  if (closing_) return;
  closing_ = true;
  reason_ = std::string(reason);
  pipeline_.mark_closed();
  error_code ec;
  // Bytes still queued are lost: a FIN would tell the peer the stream ended complete.
  for (Flow& f : flows_) {
    if (f.queued || f.piped) reset = true;
    worker_.pipes.give(std::move(f.pipe), f.piped == 0);
  }
  if (reset) {
    // An error mid-stream: make both peers see an abort (RST), not a clean end of data.
    client_.set_option(Socket::linger(true, 0), ec);
    if (upstream_.is_open()) upstream_.set_option(Socket::linger(true, 0), ec);
  }
  client_.close(ec);
  upstream_.close(ec);
  timer_.cancel();
  timers_.clear();
  check_done();
}

// Runs finish() once the channel is over, on its own stack: close() and the last FIN may come
// from inside a middleware's hook, and on_close must not run under another hook.
void Channel::check_done() {
  if (finish_posted_ || (!closing_ && !both_done())) return;
  asio::post(worker_.io, [self = shared_from_this()] {
    try {
      self->finish();
    } catch (const std::exception& e) {
      // on_close already ran or never will: let the channel go rather than hold it forever.
      spdlog::error("ch{}: finishing failed: {}", self->id_, e.what());
      self->unlink();
      self->self_.reset();
    }
  });
  finish_posted_ = true;  // after the post: if it threw, a later check may post again
}

void Channel::finish() {
  const bool clean = !closing_;
  if (clean) close(first_end_ ? std::string(first_end_) + " closed" : "closed", false);
  const Flow& up = flow(Direction::upstream);
  const Flow& down = flow(Direction::downstream);
  CloseInfo info{reason_,
                 upstream_target() && connect_ == Connect::connected,
                 up.read,
                 up.written,
                 down.read,
                 down.written,
                 Clock::now() - started_};
  pipeline_.close(info);
  timer_.cancel();
  timers_.clear();  // any a middleware started from on_close
  const auto level = clean ? spdlog::level::debug : spdlog::level::info;
  if (spdlog::should_log(level)) {
    const auto upstream = upstream_address();
    const std::string zero_copy =
        up.spliced || down.spliced
            ? fmt::format(", zero-copy {} B up, {} B down", up.spliced, down.spliced)
            : std::string();
    spdlog::log(level, "ch{} {}: closed: {} (client {} -> {}: {} B up, {} B down{})", id_,
                spec_->config.name, reason_, client_address(), upstream.empty() ? "-" : upstream,
                up.read, down.read, zero_copy);
  }
  unlink();
  self_.reset();  // the handlers still pending (cancelled waits) hold the rest
}

std::string_view Channel::client_address() const {
  if (client_address_.empty()) client_address_ = to_string(client_ep_);
  return client_address_;
}

std::string_view Channel::upstream_address() const {
  if (upstream_address_.empty()) {
    if (connect_ == Connect::connected)
      upstream_address_ = to_string(upstream_ep_);
    else if (const HostPort* t = upstream_target())
      upstream_address_ = t->str();
  }
  return upstream_address_;
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
