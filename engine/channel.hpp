#pragma once
// Channel: one accepted client, its upstream connection and one instance of every middleware of
// its listener, all on one worker. Its life is one coroutine (run) that pumps both directions
// and ends when both have delivered their FIN, or when anything closes the channel.
//
// Per direction ("flow"): the source socket is read only while the bytes queued for the sink are
// under the high watermark and no middleware holds; a read takes a pooled chunk only once the
// socket is readable, and the writer gives it back once written, so an idle channel holds no
// buffer. The half-close is forwarded (shutdown of the sink's send side) after the last byte.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "address.hpp"
#include "runtime.hpp"
#include "sluice/pipeline.hpp"
#include "worker.hpp"

namespace sluice {

class Channel final : public std::enable_shared_from_this<Channel>,
                      public ChannelHook,
                      private Pipeline::Host {
 public:
  static void start(Worker& worker, boost::asio::ip::tcp::socket client,
                    std::shared_ptr<const ListenerSpec> spec);
  // Closes the channel from outside (drain timeout); on the worker's thread.
  void abort(std::string_view reason) { close(reason, false); }

  Channel(Worker& worker, boost::asio::ip::tcp::socket client,
          std::shared_ptr<const ListenerSpec> spec);
  ~Channel();

 private:
  struct Flow {
    explicit Flow(boost::asio::io_context& io) : wake(io) {}
    std::vector<Chunk> queue;  // waiting for the sink, front at `head`
    std::size_t head = 0;
    std::size_t offset = 0;  // bytes of queue[head] already written
    std::size_t queued = 0;  // bytes waiting in queue
    bool writing = false;    // an async wait for writability is pending
    bool full = false;       // hit the high watermark: the pump waits until the low one
    bool source_done = false;
    bool end_emitted = false;  // the chain passed the half-close: shut down after the queue
    bool shut = false;
    boost::asio::steady_timer wake;  // the pump waits here; cancel() wakes it
    std::uint64_t read = 0, written = 0;
  };
  enum class Connect { none, deferred, pending, connected };

  boost::asio::awaitable<void> run(std::shared_ptr<Channel> keep_alive);
  boost::asio::awaitable<void> pump(Direction dir);
  boost::asio::awaitable<void> connect(std::shared_ptr<Channel> keep_alive);
  boost::asio::awaitable<void> wait(Flow& f);
  void begin_connect();
  void write(Direction dir);
  void shut_sink(Direction dir);
  void arm_idle(Clock::duration after);
  void close(std::string_view reason, bool reset);
  void finish();

  Flow& flow(Direction d) { return flows_[d == Direction::upstream ? 0 : 1]; }
  boost::asio::ip::tcp::socket& source(Direction d) {
    return d == Direction::upstream ? client_ : upstream_;
  }
  boost::asio::ip::tcp::socket& sink(Direction d) {
    return d == Direction::upstream ? upstream_ : client_;
  }
  bool sink_ready(Direction d) const {
    return d == Direction::downstream || connect_ == Connect::connected;
  }

  // Pipeline::Host
  std::uint64_t channel_id() const override { return id_; }
  std::string_view listener() const override { return spec_->config.name; }
  std::string_view client_address() const override { return client_address_; }
  std::string_view upstream_address() const override { return upstream_address_; }
  void set_upstream(std::string_view host_port) override;
  void defer_connect() override;
  void connect_upstream() override;
  void emit(Direction dir, Chunk&& chunk) override;
  void emit_end(Direction dir) override;
  void pause(Direction) override {}
  void resume(Direction dir) override { flow(dir).wake.cancel(); }
  void close(std::string_view reason) override { close(reason, false); }
  Clock::time_point now() const override { return Clock::now(); }
  TimerId start_timer(Clock::duration after, std::function<void()> fire) override;
  void cancel_timer(TimerId id) override;
  void log(Level level, std::string_view type, std::string_view message) override;
  bool log_enabled(Level level) const override;
  boost::asio::io_context& io_context() override { return worker_.io; }

  std::shared_ptr<const ListenerSpec> spec_;  // first: outlives the middlewares it made
  Worker& worker_;
  std::uint64_t id_;
  boost::asio::ip::tcp::socket client_;
  boost::asio::ip::tcp::socket upstream_;
  std::string client_address_;
  std::string upstream_address_;
  std::optional<HostPort> target_;
  Connect connect_ = Connect::none;
  bool opening_ = false;
  bool closing_ = false;
  std::string reason_;
  const char* first_end_ = nullptr;
  Clock::time_point started_;
  Clock::time_point last_activity_;
  boost::asio::steady_timer idle_;
  std::map<TimerId, boost::asio::steady_timer> timers_;
  TimerId last_timer_ = 0;
  Flow flows_[2];
  Pipeline pipeline_;  // last: destroyed first, while everything it may call still exists
};

}  // namespace sluice
