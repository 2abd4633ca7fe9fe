#pragma once
// Context: a middleware's handle on its channel. Every middleware instance gets its own Context,
// valid from on_open until on_close returns, so it may keep a pointer to it for timer callbacks.
// Every call happens on the channel's worker thread; none may be made from another thread.
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "sluice/log.hpp"

namespace boost::asio {
class io_context;
}

namespace sluice {

// upstream: bytes from the client towards the upstream server (visits the chain in config order).
// downstream: bytes from the upstream server towards the client (visits the chain in reverse).
enum class Direction : std::uint8_t { upstream, downstream };

inline constexpr std::string_view to_string(Direction d) {
  return d == Direction::upstream ? "upstream" : "downstream";
}

using Clock = std::chrono::steady_clock;
using TimerId = std::uint64_t;

class Context {
 public:
  virtual std::uint64_t channel_id() const = 0;
  virtual std::string_view listener() const = 0;
  // "ip:port" ("[v6]:port" for IPv6) of the accepted client.
  virtual std::string_view client_address() const = 0;
  // The upstream as configured or as set by a middleware ("host:port"); empty if none. Once
  // connected, the address actually connected to. The view changes with set_upstream and with
  // the connect: copy it to keep it.
  virtual std::string_view upstream_address() const = 0;

  // Connecting. set_upstream picks the target (in on_open, or later while deferred; once the
  // connect has started it throws std::logic_error). defer_connect, in on_open only (else it
  // throws std::logic_error), keeps the engine from connecting until connect_upstream() is
  // called, while client bytes already flow through the chain (and wait, bounded by the
  // watermarks, at the end of it). connect_upstream() does nothing once the connect has started.
  virtual void set_upstream(std::string_view host_port) = 0;
  virtual void defer_connect() = 0;
  virtual void connect_upstream() = 0;

  // Injects bytes in `dir` that continue from just after this middleware (the next one in
  // that direction's order, or the socket). They count towards the direction's watermark.
  virtual void send(Direction dir, std::string_view bytes) = 0;
  // Releases the chunk this middleware held with Verdict::hold in `dir`: it continues to the
  // next middleware, then the engine reads that direction again.
  virtual void resume(Direction dir) = 0;
  // Closes the channel (both sides) with `reason` in the log and in on_close.
  virtual void close(std::string_view reason) = 0;

  // True when a layer earlier in the chain (such as `frame`) turns the stream into messages:
  // every on_data chunk is then one whole message, in both directions, and may be empty.
  virtual bool messages() const = 0;

  // The worker's event loop, for a middleware that does its own I/O (tee's mirror connections).
  // Handlers run on the channel's thread; whatever the middleware starts there must not touch
  // the middleware after on_close (own the I/O state with a shared_ptr and close it there).
  // It runs without locks: never touch it from another thread, and look host names up with
  // resolve(), as Asio's resolver fails there with operation_not_supported.
  virtual boost::asio::io_context& io_context() = 0;
  // Looks `host` up (port: a number or a service name) without blocking the channel's thread.
  // `done` runs later on that thread with the addresses in getaddrinfo's order or the error,
  // also after the channel closed: like io_context() handlers, it must own what it touches.
  using Resolved = std::function<void(const boost::system::error_code&,
                                      std::vector<boost::asio::ip::tcp::endpoint>)>;
  virtual void resolve(std::string_view host, std::string_view port, Resolved done) = 0;

  // One-shot timer on the channel's thread; all timers are cancelled when the channel closes.
  virtual Clock::time_point now() const = 0;
  virtual TimerId start_timer(Clock::duration after, std::function<void()> fire) = 0;
  virtual void cancel_timer(TimerId id) = 0;

  // A log line prefixed with the channel id and the middleware's type.
  virtual void log(Level level, std::string_view message) = 0;
  virtual bool log_enabled(Level level) const = 0;

 protected:
  ~Context() = default;
};

}  // namespace sluice
