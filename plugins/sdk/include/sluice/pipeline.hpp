#pragma once
// Pipeline: the I/O-free core of a channel. It owns one instance of every middleware of a chain
// and moves chunks, half-closes and injected bytes through them in order; whoever drives it
// (the engine's Channel with real sockets, or testing::Harness with strings and a fake clock)
// supplies a Host. Keeping this logic here, once, means a middleware behaves the same under the
// harness as in production.
//
// Ordering rules it guarantees:
// - upstream chunks visit middlewares in chain order, downstream chunks in reverse order;
// - bytes a middleware injects with ctx.send() during on_data go out before the chunk it passes;
// - while a middleware holds in a direction, every later chunk it sees waits behind the held
//   ones until ctx.resume(), and so does the half-close;
// - on_end reaches a middleware only after every on_data of that direction, and the host sees
//   emit_end() only after every byte of that direction was emitted;
// - a layer's server-edge partner (MiddlewareFactory::create_server_edge) runs after the last
//   middleware upstream and before the first downstream; the middlewares between a layer and
//   its edge see messages, where an empty chunk is an empty message that goes on;
// - bytes sent from on_open wait until every on_open ran, so no middleware sees data first.
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/chunk.hpp"
#include "sluice/context.hpp"
#include "sluice/middleware.hpp"

namespace sluice {

// Reuses chunk storage so a pass-through chain never allocates per chunk. One per thread.
class ChunkPool {
 public:
  explicit ChunkPool(std::size_t chunk_size = 64 * 1024, std::size_t max_free = 1024)
      : chunk_size_(chunk_size), max_free_(max_free) {}
  std::size_t chunk_size() const { return chunk_size_; }
  std::size_t free_count() const { return free_.size(); }

  Chunk take() {
    if (free_.empty()) return Chunk(chunk_size_);
    Chunk c = std::move(free_.back());
    free_.pop_back();
    c.clear();
    return c;
  }
  // Keeps ordinary chunks for reuse; odd-sized ones (grown by a middleware) are freed.
  void give(Chunk&& c) {
    if (free_.size() < max_free_ && c.capacity() == chunk_size_) free_.push_back(std::move(c));
  }

 private:
  std::size_t chunk_size_;
  std::size_t max_free_;
  std::vector<Chunk> free_;
};

class Pipeline {
 public:
  // What the driver of a pipeline provides.
  class Host {
   public:
    virtual std::uint64_t channel_id() const = 0;
    virtual std::string_view listener() const = 0;
    virtual std::string_view client_address() const = 0;
    virtual std::string_view upstream_address() const = 0;
    virtual void set_upstream(std::string_view host_port) = 0;
    virtual void defer_connect() = 0;
    virtual void connect_upstream() = 0;
    // Bytes and the half-close leaving the chain, towards the socket of `dir`.
    virtual void emit(Direction dir, Chunk&& chunk) = 0;
    virtual void emit_end(Direction dir) = 0;
    // Some middleware holds in `dir` (pause) / none does any more (resume): stop or restart
    // reading the source of `dir`.
    virtual void pause(Direction dir) = 0;
    virtual void resume(Direction dir) = 0;
    // Must not destroy the pipeline from inside this call: it may come from a hook. close() is
    // a middleware's verdict (the peers get a FIN once queued bytes are out); abort() a failure
    // (a middleware threw or made nothing): the stream is broken, the peers get a reset.
    virtual void close(std::string_view reason) = 0;
    virtual void abort(std::string_view reason) = 0;
    virtual Clock::time_point now() const = 0;
    virtual TimerId start_timer(Clock::duration after, std::function<void()> fire) = 0;
    virtual void cancel_timer(TimerId id) = 0;
    virtual void log(Level level, std::string_view type, std::string_view message) = 0;
    virtual bool log_enabled(Level level) const = 0;
    virtual boost::asio::io_context& io_context() = 0;
    virtual void resolve(std::string_view host, std::string_view port, Context::Resolved done) = 0;

   protected:
    ~Host() = default;
  };

  struct Stage {
    std::string_view type;
    MiddlewareFactory* factory;
  };

  Pipeline(Host& host, ChunkPool& pool) : host_(host), pool_(pool) {}
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Creates every middleware (and the server-edge partner of every layer, placed after the last
  // stage), then runs on_open in chain order. A failure closes the channel.
  void open(std::span<const Stage> stages) {
    slots_.reserve(2 * stages.size());  // upper bound: Slots are Contexts, they must not move
    std::vector<std::pair<MiddlewareFactory*, std::size_t>> layers;  // factory, client-side slot
    std::vector<std::unique_ptr<Middleware>> edges;
    for (const Stage& st : stages) {
      slots_.emplace_back(*this, st.type);
      Slot& s = slots_.back();
      s.in_layer = !layers.empty();
      s.takes_empty[0] = s.takes_empty[1] = s.in_layer;
      // On a failure the channel is closed, but the edges made so far still take their slots
      // below, so that on_close reaches every middleware that was created.
      if (!guard(s, "create", [&] { s.middleware = st.factory->create(); })) break;
      if (!s.middleware) {
        abort("middleware " + std::string(s.type) + " made no middleware (create gave null)");
        break;
      }
      std::unique_ptr<Middleware> edge;
      if (!guard(s, "create", [&] { edge = st.factory->create_server_edge(*s.middleware); })) break;
      if (edge) {
        s.takes_empty[index(Direction::downstream)] = true;  // the messages it encodes
        edges.push_back(std::move(edge));
        layers.emplace_back(st.factory, slots_.size() - 1);
      }
    }
    // The innermost layer's edge comes first upstream (last downstream).
    for (std::size_t i = layers.size(); i-- > 0;) {
      slots_.emplace_back(*this, slots_[layers[i].second].type);
      slots_.back().in_layer = i > 0;
      slots_.back().takes_empty[index(Direction::upstream)] = true;
      slots_.back().takes_empty[index(Direction::downstream)] = i > 0;
      slots_.back().middleware = std::move(edges[i]);
    }
    std::vector<Sent> sent;
    sent_during_open_ = &sent;
    for (Slot& s : slots_) {
      if (closed_) break;
      guard(s, "on_open", [&] { s.middleware->on_open(s); });
    }
    sent_during_open_ = nullptr;
    // Bytes sent from on_open reach the middlewares after the sender once every on_open ran.
    for (Sent& one : sent) {
      if (closed_) break;
      deliver(one.dir, one.from + 1, std::move(one.chunk));
    }
  }

  // The upstream connection is established.
  void connected() {
    for (Slot& s : slots_) {
      if (closed_) return;
      guard(s, "on_connected", [&] { s.middleware->on_connected(s); });
    }
  }

  // Bytes read from the source of `dir` enter the chain.
  void data(Direction dir, Chunk&& chunk) { deliver(dir, 0, std::move(chunk)); }
  // The source of `dir` sent FIN.
  void end(Direction dir) { deliver_end(dir, 0); }
  // Runs on_close once on every middleware that was created, in chain order.
  void close(const CloseInfo& info) {
    closed_ = true;
    for (Slot& s : slots_) {
      if (!s.middleware) continue;
      try {
        s.middleware->on_close(s, info);
      } catch (const std::exception& e) {
        host_.log(Level::warn, s.type, std::string("on_close threw: ") + e.what());
      } catch (...) {
        host_.log(Level::warn, s.type, "on_close threw an unknown exception");
      }
      for (auto& q : s.held) q.clear();
    }
  }
  // Closed by a middleware or the host; hooks are no longer called (except on_close).
  bool closed() const { return closed_; }
  void mark_closed() { closed_ = true; }
  bool holding(Direction dir) const { return holding_[index(dir)] > 0; }
  std::size_t size() const { return slots_.size(); }

 private:
  struct Slot final : Context {
    Slot(Pipeline& p, std::string_view t) : pipeline(&p), type(t) {}
    Pipeline* pipeline;
    std::string_view type;
    std::unique_ptr<Middleware> middleware;
    std::vector<Chunk> held[2];
    bool end_pending[2] = {false, false};
    bool releasing[2] = {false, false};   // resume() is passing the held chunks on
    bool held_again[2] = {false, false};  // ... and a chunk that came back was held
    bool in_layer = false;  // inside a layer: chunks are messages, an empty one included
    // Per direction: whether an empty chunk reaching it is a message. A layer's halves take the
    // messages they encode, whatever side of any outer layer they sit.
    bool takes_empty[2] = {false, false};

    std::uint64_t channel_id() const override { return pipeline->host_.channel_id(); }
    std::string_view listener() const override { return pipeline->host_.listener(); }
    std::string_view client_address() const override { return pipeline->host_.client_address(); }
    std::string_view upstream_address() const override {
      return pipeline->host_.upstream_address();
    }
    void set_upstream(std::string_view hp) override { pipeline->host_.set_upstream(hp); }
    void defer_connect() override { pipeline->host_.defer_connect(); }
    void connect_upstream() override { pipeline->host_.connect_upstream(); }
    void send(Direction dir, std::string_view bytes) override {
      pipeline->send_from(*this, dir, bytes);
    }
    void resume(Direction dir) override { pipeline->resume_from(*this, dir); }
    void close(std::string_view reason) override {
      if (pipeline->closed_) return;
      pipeline->closed_ = true;
      pipeline->host_.close(reason);
    }
    Clock::time_point now() const override { return pipeline->host_.now(); }
    TimerId start_timer(Clock::duration after, std::function<void()> fire) override {
      Pipeline* p = pipeline;
      return p->host_.start_timer(after, [p, this, fire = std::move(fire)] {
        if (p->closed_) return;
        try {
          fire();
        } catch (const std::exception& e) {
          p->fail(*this, "timer", e.what());
        } catch (...) {
          p->fail(*this, "timer", "unknown exception");
        }
      });
    }
    void cancel_timer(TimerId id) override { pipeline->host_.cancel_timer(id); }
    bool messages() const override { return in_layer; }
    boost::asio::io_context& io_context() override { return pipeline->host_.io_context(); }
    void resolve(std::string_view host, std::string_view port, Resolved done) override {
      pipeline->host_.resolve(host, port, std::move(done));
    }
    void log(Level level, std::string_view message) override {
      pipeline->host_.log(level, type, message);
    }
    bool log_enabled(Level level) const override { return pipeline->host_.log_enabled(level); }
  };

  static std::size_t index(Direction d) { return d == Direction::upstream ? 0 : 1; }
  // Position `pos` in the visiting order of `dir` -> slot.
  Slot& at(Direction dir, std::size_t pos) {
    return slots_[dir == Direction::upstream ? pos : slots_.size() - 1 - pos];
  }
  std::size_t position_of(const Slot& s, Direction dir) const {
    auto i = static_cast<std::size_t>(&s - slots_.data());
    return dir == Direction::upstream ? i : slots_.size() - 1 - i;
  }

  // A failure closes the channel once, with a reset.
  void abort(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    host_.abort(reason);
  }
  void fail(Slot& s, std::string_view hook, std::string_view what) {
    abort("middleware " + std::string(s.type) + " threw in " + std::string(hook) + ": " +
          std::string(what));
  }
  // Runs one hook of `s`; an exception closes the channel. False if it threw.
  template <class F>
  bool guard(Slot& s, std::string_view hook, F&& f) {
    try {
      f();
      return true;
    } catch (const std::exception& e) {
      fail(s, hook, e.what());
    } catch (...) {
      fail(s, hook, "unknown exception");
    }
    return false;
  }
  // Whether an empty chunk leaving position `pos` of `dir` still goes on (as an empty message).
  bool carries_empty(Direction dir, std::size_t pos) {
    return pos + 1 < slots_.size() && at(dir, pos + 1).takes_empty[index(dir)];
  }

  void deliver(Direction dir, std::size_t pos, Chunk&& chunk) {
    const std::size_t d = index(dir);
    for (; pos < slots_.size(); ++pos) {
      if (closed_) break;
      Slot& s = at(dir, pos);
      Verdict v = Verdict::pass;
      if (!guard(s, "on_data", [&] { v = s.middleware->on_data(s, dir, chunk); })) break;
      if (closed_) break;
      if (v == Verdict::close) {
        closed_ = true;
        host_.close("closed by middleware " + std::string(s.type));
        break;
      }
      if (v == Verdict::drop) chunk.clear();
      const bool goes_on = v != Verdict::drop && (!chunk.empty() || carries_empty(dir, pos));
      if (v == Verdict::hold || !s.held[d].empty() || s.releasing[d]) {
        if (v != Verdict::hold && !goes_on) break;  // nothing to queue behind the held
        if (s.releasing[d]) {
          if (v == Verdict::hold) s.held_again[d] = true;  // still counted in holding_
        } else if (s.held[d].empty() && ++holding_[d] == 1) {
          host_.pause(dir);
        }
        s.held[d].push_back(std::move(chunk));
        return;
      }
      if (!goes_on) break;
    }
    if (closed_ || chunk.empty()) {
      pool_.give(std::move(chunk));
      return;
    }
    host_.emit(dir, std::move(chunk));
  }

  void deliver_end(Direction dir, std::size_t pos) {
    for (; pos < slots_.size(); ++pos) {
      if (closed_) return;
      Slot& s = at(dir, pos);
      if (!guard(s, "on_end", [&] { s.middleware->on_end(s, dir); })) return;
      if (!s.held[index(dir)].empty() || s.releasing[index(dir)]) {
        s.end_pending[index(dir)] = true;
        return;
      }
    }
    if (!closed_) host_.emit_end(dir);
  }

  void send_from(Slot& s, Direction dir, std::string_view bytes) {
    const std::size_t pos = position_of(s, dir);
    if (closed_ || (bytes.empty() && !carries_empty(dir, pos))) return;
    Chunk c = pool_.take();
    c.assign(bytes);
    if (sent_during_open_) {
      sent_during_open_->push_back({dir, pos, std::move(c)});
      return;
    }
    deliver(dir, pos + 1, std::move(c));
  }

  void resume_from(Slot& s, Direction dir) {
    const std::size_t d = index(dir);
    // While s releases, a chunk can come back to s itself (a middleware after it answers, one
    // before it injects in dir): deliver() queues it behind the release, which this loop then
    // passes on in order, unless s holds it.
    if (closed_ || s.held[d].empty() || s.releasing[d]) return;
    s.releasing[d] = true;
    s.held_again[d] = false;
    const std::size_t next = position_of(s, dir) + 1;
    while (!s.held[d].empty() && !s.held_again[d] && !closed_) {
      std::vector<Chunk> batch = std::move(s.held[d]);
      s.held[d].clear();
      for (auto it = batch.begin(); it != batch.end() && !closed_; ++it) {
        if (s.held_again[d]) {  // s held a chunk that came back: the rest waits in front of it
          s.held[d].insert(s.held[d].begin(), std::make_move_iterator(it),
                           std::make_move_iterator(batch.end()));
          break;
        }
        if (it->empty() && !carries_empty(dir, next - 1)) continue;
        deliver(dir, next, std::move(*it));
      }
    }
    s.releasing[d] = false;
    if (closed_ || !s.held[d].empty()) return;  // still holding: still counted in holding_
    if (s.end_pending[d]) {
      s.end_pending[d] = false;
      deliver_end(dir, next);
    }
    if (--holding_[d] == 0 && !closed_) host_.resume(dir);
  }

  Host& host_;
  ChunkPool& pool_;
  std::vector<Slot> slots_;
  struct Sent {
    Direction dir;
    std::size_t from;  // position of the sender in dir's order
    Chunk chunk;
  };
  std::vector<Sent>* sent_during_open_ = nullptr;  // open()'s, while it runs on_open
  std::size_t holding_[2] = {0, 0};
  bool closed_ = false;
};

}  // namespace sluice
