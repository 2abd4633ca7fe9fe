#pragma once
// Channel: one accepted client, its upstream connection and one instance of every middleware of
// its listener, all on one worker. It is a state machine driven by completion handlers, not a
// coroutine: an idle direction is parked as one pending readiness wait on its source socket (a
// small recycled handler), so an idle channel costs its sockets, this object and its pipeline.
// It ends when both directions have delivered their FIN, or when anything closes it; finish()
// then runs on_close once, on a fresh stack (never from inside a middleware's hook).
//
// Per direction ("flow"): the source socket is read only while the bytes queued for the sink are
// under the high watermark and no middleware holds; a read takes a pooled chunk only once the
// socket is readable, and the writer gives it back once written, so an idle channel holds no
// buffer. The half-close is forwarded (shutdown of the sink's send side) after the last byte.
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "address.hpp"
#include "readable_wait.hpp"
#include "runtime.hpp"
#include "sluice/pipeline.hpp"
#include "worker.hpp"

namespace sluice {

class Channel final : public std::enable_shared_from_this<Channel>,
                      public ChannelHook,
                      private Pipeline::Host {
 public:
  // `client` has TCP_NODELAY as the listener's config says (accepted sockets inherit it from the
  // listening socket); `peer` is its address as accept() returned it.
  static void start(Worker& worker, Socket client, const boost::asio::ip::tcp::endpoint& peer,
                    std::shared_ptr<const ListenerSpec> spec);
  // Closes the channel from outside (drain timeout); on the worker's thread.
  void stop(std::string_view reason) { close(reason, false); }
  // The worker is going away with this channel still open: drop its hold on itself so the
  // pending handlers, destroyed with the io_context, free it.
  void release() {
    unlink();
    self_.reset();
  }

  Channel(Worker& worker, Socket client, const boost::asio::ip::tcp::endpoint& peer,
          std::shared_ptr<const ListenerSpec> spec);
  ~Channel();

 private:
  struct Flow {
    std::vector<Chunk> queue;  // waiting for the sink, front at `head`
    std::size_t head = 0;
    std::size_t offset = 0;  // bytes of queue[head] already written
    std::size_t queued = 0;  // bytes waiting in queue
    bool reading = false;    // a read loop runs, or a read is pending (readiness wait or post)
    bool writing = false;    // an async wait for writability is pending
    bool full = false;       // hit the high watermark: reading waits until the low one
    bool source_done = false;
    bool end_emitted = false;  // the chain passed the half-close: shut down after the queue
    bool shut = false;
    bool bulk = false;      // reads are large: the next one splices (if the chain allows)
    Pipe pipe;              // held only while a bulk transfer is in flight
    std::size_t piped = 0;  // bytes in the pipe, not yet taken by the sink
    std::uint64_t read = 0, written = 0, spliced = 0;
    bool done() const { return source_done && shut; }
  };
  enum class Step : std::uint8_t { more, stop, parked };
  enum class Connect : std::uint8_t { none, deferred, pending, connected };

  void open();
  void read(Direction dir);
  void park(Direction dir);
  void on_readable(Direction dir, const boost::system::error_code& ec);
  void source_ended(Direction dir);
  Step splice_round(Direction dir);
  bool drain_pipe(Direction dir);
  void wake(Direction dir);
  void begin_connect();
  void attempt(const boost::asio::ip::tcp::endpoint& ep);
  void await_connect();  // the upstream socket's connect is in progress
  void on_attempt(const boost::system::error_code& ec);
  void on_connect(const boost::system::error_code& ec);
  std::optional<std::size_t> send_now(Direction dir, const char* p, std::size_t n);
  void enqueue(Direction dir, Chunk&& chunk, std::size_t done);
  void write(Direction dir);
  void wait_writable(Direction dir);
  void write_failed(Direction dir, int err);
  void after_write(Direction dir);
  void shut_sink(Direction dir);
  void arm_timer();
  void on_timer();
  void close(std::string_view reason, bool reset);
  void check_done();
  void finish();
  // Runs a completion handler's work: an exception (bad_alloc, a bug) closes this channel only.
  template <class F>
  void guarded(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      close(std::string("internal error: ") + e.what(), true);
    }
  }

  Flow& flow(Direction d) { return flows_[d == Direction::upstream ? 0 : 1]; }
  // Both directions delivered their FIN: the channel finishes.
  bool both_done() const { return flows_[0].done() && flows_[1].done(); }
  Socket& source(Direction d) { return d == Direction::upstream ? client_ : upstream_; }
  Socket& sink(Direction d) { return d == Direction::upstream ? upstream_ : client_; }
  bool sink_ready(Direction d) const {
    return d == Direction::downstream || connect_ == Connect::connected;
  }

  // Pipeline::Host
  std::uint64_t channel_id() const override { return id_; }
  std::string_view listener() const override { return spec_->config.name; }
  std::string_view client_address() const override;
  std::string_view upstream_address() const override;
  void set_upstream(std::string_view host_port) override;
  void defer_connect() override;
  void connect_upstream() override;
  void emit(Direction dir, Chunk&& chunk) override;
  void emit_end(Direction dir) override;
  void pause(Direction) override {}
  void resume(Direction dir) override { wake(dir); }
  void close(std::string_view reason) override { close(reason, false); }
  void abort(std::string_view reason) override { close(reason, true); }
  Clock::time_point now() const override { return Clock::now(); }
  TimerId start_timer(Clock::duration after, std::function<void()> fire) override;
  void cancel_timer(TimerId id) override;
  void log(Level level, std::string_view type, std::string_view message) override;
  bool log_enabled(Level level) const override;
  boost::asio::io_context& io_context() override { return worker_.io; }
  void resolve(std::string_view host, std::string_view port, Context::Resolved done) override;

  std::shared_ptr<const ListenerSpec> spec_;  // first: outlives the middlewares it made
  Worker& worker_;
  std::shared_ptr<Channel> self_;  // alive until finish(), whatever is pending
  const bool blind_;               // no middleware needs the bytes: they skip the chain
  const bool splices_;             // ... and bulk goes through pipes
  std::uint64_t id_;
  Socket client_;
  Socket upstream_;
  boost::asio::ip::tcp::endpoint client_ep_;
  boost::asio::ip::tcp::endpoint upstream_ep_;             // the one connecting or connected
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;  // a host name's addresses
  std::size_t next_endpoint_ = 0;                          // the next of them to try
  // Formatted on first use only: most channels never need their addresses as text.
  mutable std::string client_address_;
  mutable std::string upstream_address_;
  std::unique_ptr<HostPort> target_;  // set_upstream's; else the listener's upstream
  const HostPort* upstream_target() const {
    return target_ ? target_.get() : spec_->config.upstream ? &*spec_->config.upstream : nullptr;
  }
  Connect connect_ = Connect::none;
  bool opening_ = false;
  bool closing_ = false;
  bool finish_posted_ = false;
  bool timer_armed_ = false;
  const char* first_end_ = nullptr;
  std::string reason_;
  Clock::time_point started_;
  Clock::time_point last_activity_;
  Clock::time_point connect_deadline_;
  // One timer for the engine's deadlines (connect, idle): whichever comes first.
  Timer timer_;
  std::map<TimerId, Timer> timers_;  // the middlewares' (empty: no memory)
  TimerId last_timer_ = 0;
  Flow flows_[2];
  // The parked read of each direction (client, upstream), without a handler allocation.
  ReadableWait<Channel> read_wait_[2] = {
      ReadableWait<Channel>([](Channel& c, const boost::system::error_code& ec) {
        c.on_readable(Direction::upstream, ec);
      }),
      ReadableWait<Channel>([](Channel& c, const boost::system::error_code& ec) {
        c.on_readable(Direction::downstream, ec);
      })};
  Pipeline pipeline_;  // last: destroyed first, while everything it may call still exists
};

}  // namespace sluice
