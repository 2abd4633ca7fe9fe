#pragma once
// Socket-free test harness: drives a chain of middlewares exactly as the engine does (through the
// same Pipeline), with strings for sockets and a fake clock for timers.
//
//   sluice::testing::Types types;            // collects types like the plugin loader does
//   my_register(types);                      // your plugin's registration function
//   sluice::testing::Chain chain(types, R"([{"type": "upper"}])"_json);
//   sluice::testing::Harness h(chain);       // one channel
//   h.feed(sluice::Direction::upstream, "abc");
//   assert(h.take(sluice::Direction::upstream) == "ABC");
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/pipeline.hpp"
#include "sluice/plugin.hpp"

namespace sluice::testing {

// A Registry that keeps what a plugin registers, for Chain to build from.
class Types final : public Registry {
 public:
  struct Entry {
    std::string description;
    MiddlewareMaker middleware;
    ExtensionMaker extension;
  };
  void add_middleware(std::string_view type, std::string_view description,
                      MiddlewareMaker make) override {
    add(type, {std::string(description), std::move(make), nullptr});
  }
  void add_extension(std::string_view type, std::string_view description,
                     ExtensionMaker make) override {
    add(type, {std::string(description), nullptr, std::move(make)});
  }
  const Entry* find(std::string_view type) const {
    auto it = entries_.find(std::string(type));
    return it == entries_.end() ? nullptr : &it->second;
  }

 private:
  void add(std::string_view type, Entry e) {
    if (!entries_.emplace(std::string(type), std::move(e)).second)
      throw std::logic_error("type registered twice: " + std::string(type));
  }
  std::map<std::string, Entry> entries_;
};

// A listener's chain: extensions (a JSON object like the config's "extensions") and middleware
// factories (a JSON array like a listener's "middlewares"), built and validated once.
class Chain final : public Services {
 public:
  Chain(const Types& types, const nlohmann::json& middlewares,
        const nlohmann::json& extensions = nlohmann::json::object()) {
    Options ext_root(extensions, "/extensions");
    for (auto it = extensions.begin(); it != extensions.end(); ++it) {
      Options o = ext_root.object(it.key());
      const auto type = o.require<std::string>("type");
      const Types::Entry* e = types.find(type);
      if (!e || !e->extension) o.fail("type", "unknown extension type \"" + type + "\"");
      auto ext = e->extension(o, *this);
      o.finish();
      ext->start();
      extensions_.emplace_back(it.key(), std::move(ext));
    }
    if (!middlewares.is_array()) throw ConfigError("/middlewares", "expected an array");
    for (std::size_t i = 0; i < middlewares.size(); ++i) {
      Options o(middlewares[i], "/middlewares/" + std::to_string(i));
      auto type = o.require<std::string>("type");
      const Types::Entry* e = types.find(type);
      if (!e || !e->middleware) o.fail("type", "unknown middleware type \"" + type + "\"");
      auto factory = e->middleware(o, *this);
      o.finish();
      types_.push_back(std::make_unique<std::string>(std::move(type)));
      factories_.push_back(std::move(factory));
      stages_.push_back({*types_.back(), factories_.back().get()});
    }
    // As the engine does, once the whole chain is made.
    for (std::size_t i = 0; i < factories_.size(); ++i) {
      try {
        factories_[i]->start();
      } catch (const ConfigError&) {
        throw;
      } catch (const std::exception& e) {
        throw ConfigError("/middlewares/" + std::to_string(i), e.what());
      }
    }
  }
  ~Chain() {
    factories_.clear();
    for (auto& [name, ext] : extensions_) ext->stop();
  }
  const std::vector<Pipeline::Stage>& stages() const { return stages_; }
  Extension* find_extension(std::string_view name) override {
    for (auto& [n, ext] : extensions_)
      if (n == name) return ext.get();
    return nullptr;
  }
  void log(Level, std::string_view message) override { logs.emplace_back(message); }
  std::vector<std::string> logs;

 private:
  std::vector<std::pair<std::string, std::unique_ptr<Extension>>> extensions_;
  std::vector<std::unique_ptr<std::string>> types_;
  std::vector<std::unique_ptr<MiddlewareFactory>> factories_;
  std::vector<Pipeline::Stage> stages_;
};

// One channel through a Chain. What leaves the chain towards the upstream server is
// take(Direction::upstream); towards the client, take(Direction::downstream).
class Harness final : public Pipeline::Host {
 public:
  explicit Harness(const Chain& chain, std::string client = "127.0.0.1:50000",
                   std::string upstream = "127.0.0.1:7001")
      : client_(std::move(client)), upstream_(std::move(upstream)), pipeline_(*this, pool_) {
    pipeline_.open(chain.stages());
    if (!deferred_ && !closed_) connected_ = true;
    settle();
  }
  ~Harness() { shut("harness destroyed"); }

  // As if `bytes` were read, in one chunk, from the client (upstream) or the server (downstream).
  void feed(Direction dir, std::string_view bytes) {
    Chunk c = pool_.take();
    c.assign(bytes);
    bytes_in_[idx(dir)] += bytes.size();
    pipeline_.data(dir, std::move(c));
    settle();
  }
  // As if the sender of `dir` half-closed.
  void finish(Direction dir) {
    pipeline_.end(dir);
    settle();
  }
  // Everything emitted so far in `dir`, removed from the harness.
  std::string take(Direction dir) { return std::exchange(out_[idx(dir)], {}); }
  bool ended(Direction dir) const { return ended_[idx(dir)]; }
  bool paused(Direction dir) const { return paused_[idx(dir)]; }
  bool closed() const { return closed_; }
  const std::string& close_reason() const { return close_reason_; }
  // Closed by a failure (a middleware threw): the engine would reset both peers.
  bool reset() const { return reset_; }
  bool connected() const { return connected_; }
  bool deferred() const { return deferred_; }
  // Closes the channel as the engine would (once): on_close on every middleware.
  void shut(std::string_view reason) {
    if (shut_) return;
    shut_ = true;
    if (!closed_) close_reason_ = std::string(reason);
    closed_ = true;
    CloseInfo info{close_reason_,
                   connected_,
                   bytes_in_[0],
                   bytes_out_[0],
                   bytes_in_[1],
                   bytes_out_[1],
                   std::chrono::nanoseconds(now_ - start_)};
    pipeline_.close(info);
  }
  // Moves the fake clock and fires the timers that fall due, in time order.
  void advance(Clock::duration by) {
    const Clock::time_point until = now_ + by;
    for (;;) {
      auto next = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it)
        if (it->second.first <= until &&
            (next == timers_.end() || it->second.first < next->second.first))
          next = it;
      if (next == timers_.end()) break;
      now_ = next->second.first;
      auto fire = std::move(next->second.second);
      timers_.erase(next);
      fire();
      settle();
    }
    now_ = until;
  }
  // The event loop that ctx.io_context() returns; a test runs it to drive a middleware's own I/O.
  boost::asio::io_context& io() { return io_; }
  std::size_t pending_timers() const { return timers_.size(); }
  std::vector<std::string> logs;

  // Pipeline::Host
  std::uint64_t channel_id() const override { return 1; }
  std::string_view listener() const override { return "test"; }
  std::string_view client_address() const override { return client_; }
  std::string_view upstream_address() const override { return upstream_; }
  void set_upstream(std::string_view hp) override {
    if (connected_) throw std::logic_error("set_upstream after connect");
    upstream_ = std::string(hp);
  }
  void defer_connect() override {
    if (connected_) throw std::logic_error("defer_connect after connect");
    deferred_ = true;
  }
  void connect_upstream() override { connected_ = true; }
  void emit(Direction dir, Chunk&& chunk) override {
    out_[idx(dir)] += chunk.view();
    bytes_out_[idx(dir)] += chunk.size();
    pool_.give(std::move(chunk));
  }
  void emit_end(Direction dir) override {
    ended_[idx(dir)] = true;
    // As the engine does: with no upstream connection, nothing can ever come back once the
    // client half-closed, so the downstream direction ends too (after whatever middlewares such
    // as echo already sent towards the client).
    if (dir == Direction::upstream && !connected_) pipeline_.end(Direction::downstream);
  }
  void pause(Direction dir) override { paused_[idx(dir)] = true; }
  void resume(Direction dir) override { paused_[idx(dir)] = false; }
  void close(std::string_view reason) override {
    if (closed_) return;
    closed_ = true;
    close_reason_ = std::string(reason);
  }
  void abort(std::string_view reason) override {
    if (closed_) return;
    close(reason);
    reset_ = true;
  }
  Clock::time_point now() const override { return now_; }
  TimerId start_timer(Clock::duration after, std::function<void()> fire) override {
    timers_.emplace(++last_timer_, std::make_pair(now_ + after, std::move(fire)));
    return last_timer_;
  }
  void cancel_timer(TimerId id) override { timers_.erase(id); }
  void log(Level, std::string_view type, std::string_view message) override {
    logs.push_back(std::string(type) + ": " + std::string(message));
  }
  bool log_enabled(Level) const override { return true; }
  boost::asio::io_context& io_context() override { return io_; }
  // Looks up at once (blocking the test), answers when the test next runs io(), as the engine
  // answers on a later turn of the worker's loop.
  void resolve(std::string_view host, std::string_view port, Context::Resolved done) override {
    boost::asio::ip::tcp::resolver resolver(io_);
    boost::system::error_code ec;
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
    for (const auto& r : resolver.resolve(host, port, ec)) endpoints.push_back(r.endpoint());
    boost::asio::post(io_,
                      [done = std::move(done), ec, endpoints = std::move(endpoints)]() mutable {
                        done(ec, std::move(endpoints));
                      });
  }

 private:
  // The engine connects asynchronously: on_connected comes after the hook that allowed it.
  void settle() {
    if (connected_ && !told_connected_ && !closed_) {
      told_connected_ = true;
      pipeline_.connected();
    }
  }
  static std::size_t idx(Direction d) { return d == Direction::upstream ? 0 : 1; }
  std::string client_, upstream_;
  ChunkPool pool_{4096, 64};
  std::string out_[2];
  bool ended_[2] = {false, false}, paused_[2] = {false, false};
  bool closed_ = false, reset_ = false, shut_ = false, deferred_ = false, connected_ = false;
  bool told_connected_ = false;
  std::string close_reason_;
  std::uint64_t bytes_in_[2] = {0, 0}, bytes_out_[2] = {0, 0};
  Clock::time_point start_{}, now_{};
  TimerId last_timer_ = 0;
  std::map<TimerId, std::pair<Clock::time_point, std::function<void()>>> timers_;
  boost::asio::io_context io_;
  Pipeline pipeline_;  // last: destroyed first, while the members above still exist
};

}  // namespace sluice::testing
