#define BOOST_TEST_MODULE pipeline
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/testing.hpp"

using sluice::Chunk;
using sluice::Context;
using sluice::Direction;
using sluice::Verdict;
using namespace sluice::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

using Events = std::vector<std::string>;

// Records every hook it sees as "<name> <hook> ..." and appends "[name]" to every chunk it
// passes, so both the visiting order and the bytes show it. Subclasses change one behaviour.
class Tag : public sluice::Middleware {
 public:
  Tag(std::string name, Events& events) : name_(std::move(name)), events_(events) {}
  void on_open(Context& ctx) override {
    ctx_ = &ctx;
    record("open");
  }
  Verdict on_data(Context& ctx, Direction d, Chunk& c) override {
    record(std::string(to_string(d)) + " " + std::string(c.view()));
    return data(ctx, d, c);
  }
  void on_end(Context&, Direction d) override { record("end " + std::string(to_string(d))); }
  void on_close(Context&, const sluice::CloseInfo& info) override {
    record("close " + std::string(info.reason));
  }

 protected:
  virtual Verdict data(Context&, Direction, Chunk& c) {
    c.append("[" + name_ + "]");
    return Verdict::pass;
  }
  void record(const std::string& what) { events_.push_back(name_ + " " + what); }
  const std::string& name() const { return name_; }
  Context* ctx_ = nullptr;

 private:
  std::string name_;
  Events& events_;
};

// Injects "<" upstream before passing each upstream chunk.
class Inject final : public Tag {
  using Tag::Tag;
  Verdict data(Context& ctx, Direction d, Chunk&) override {
    if (d == Direction::upstream) ctx.send(Direction::upstream, "<");
    return Verdict::pass;
  }
};

// Holds upstream chunks for 10ms after the first one it holds.
class Delay final : public Tag {
  using Tag::Tag;
  Verdict data(Context& ctx, Direction d, Chunk&) override {
    if (d != Direction::upstream) return Verdict::pass;
    if (!timer_armed_) {
      timer_armed_ = true;
      ctx.start_timer(10ms, [this] {
        timer_armed_ = false;
        ctx_->resume(Direction::upstream);
      });
    }
    return Verdict::hold;
  }
  bool timer_armed_ = false;
};

// Sends a greeting both ways from on_open (a server-first protocol, a client preamble).
class Greeter final : public Tag {
  using Tag::Tag;
  void on_open(Context& ctx) override {
    Tag::on_open(ctx);
    ctx.send(Direction::upstream, "hi");
    ctx.send(Direction::downstream, "hello");
  }
};

// The first time bytes come back downstream, injects "y" upstream (a client-side middleware
// that reacts to the server's answer); passes everything untouched.
class Bouncer final : public Tag {
  using Tag::Tag;
  Verdict data(Context& ctx, Direction d, Chunk&) override {
    if (d == Direction::downstream && !bounced_) {
      bounced_ = true;
      ctx.send(Direction::upstream, "y");
    }
    return Verdict::pass;
  }
  bool bounced_ = false;
};

class Closer final : public Tag {
  using Tag::Tag;
  Verdict data(Context&, Direction, Chunk&) override { return Verdict::close; }
};

class Thrower final : public Tag {
  using Tag::Tag;
  Verdict data(Context&, Direction, Chunk&) override { throw std::runtime_error("boom"); }
};

class Rejecter final : public Tag {
  using Tag::Tag;
  void on_open(Context& ctx) override {
    Tag::on_open(ctx);
    ctx.close("rejected");
  }
};

// Answers every upstream chunk itself, towards the client.
class Responder final : public Tag {
  using Tag::Tag;
  Verdict data(Context& ctx, Direction d, Chunk& c) override {
    if (d == Direction::upstream) {
      ctx.send(Direction::downstream, "re:" + std::string(c.view()));
      c.clear();
    }
    return Verdict::pass;
  }
};

// Defers the upstream connect; connects on the first upstream chunk if "connect" is set.
class Deferrer final : public Tag {
 public:
  Deferrer(std::string name, Events& events, bool connect)
      : Tag(std::move(name), events), connect_(connect) {}
  void on_open(Context& ctx) override {
    Tag::on_open(ctx);
    ctx.defer_connect();
  }
  Verdict data(Context& ctx, Direction, Chunk&) override {
    if (connect_) ctx.connect_upstream();
    return Verdict::pass;
  }

 private:
  bool connect_;
};

// Records whether it sees messages, and on_connected; in a layer, both halves are Sides.
class Side final : public Tag {
 public:
  using Tag::Tag;
  void on_open(Context& ctx) override {
    Tag::on_open(ctx);
    record(ctx.messages() ? "messages" : "stream");
  }
  void on_connected(Context&) override { record("connected"); }

 private:
  // An empty chunk is passed as it is (an empty message inside a layer); "drop" is dropped.
  Verdict data(Context&, Direction, Chunk& c) override {
    if (c.view() == "drop") return Verdict::drop;
    if (!c.empty()) c.append("[" + name() + "]");
    return Verdict::pass;
  }
};

class Factory final : public sluice::MiddlewareFactory {
 public:
  using Make = std::function<std::unique_ptr<sluice::Middleware>()>;
  explicit Factory(Make make, Make edge = nullptr)
      : make_(std::move(make)), edge_(std::move(edge)) {}
  std::unique_ptr<sluice::Middleware> create() override { return make_(); }
  std::unique_ptr<sluice::Middleware> create_server_edge(sluice::Middleware&) override {
    return edge_ ? edge_() : nullptr;
  }

 private:
  Make make_, edge_;
};

struct Fixture {
  Types types;
  Events events;

  template <class M>
  void add(const char* type) {
    types.add_middleware(type, "test", [this](sluice::Options& o, sluice::Services&) {
      auto name = o.require<std::string>("name");
      return std::make_unique<Factory>([this, name] { return std::make_unique<M>(name, events); });
    });
  }
  Fixture() {
    add<Tag>("tag");
    add<Inject>("inject");
    add<Delay>("delay");
    add<Closer>("closer");
    add<Thrower>("thrower");
    add<Rejecter>("rejecter");
    add<Responder>("responder");
    add<Side>("side");
    add<Greeter>("greeter");
    add<Bouncer>("bouncer");
    // A layer named N: its edge partner is named N'.
    types.add_middleware("layer", "test", [this](sluice::Options& o, sluice::Services&) {
      auto name = o.require<std::string>("name");
      return std::make_unique<Factory>(
          [this, name] { return std::make_unique<Side>(name, events); },
          [this, name] { return std::make_unique<Side>(name + "'", events); });
    });
    types.add_middleware("deferrer", "test", [this](sluice::Options& o, sluice::Services&) {
      auto name = o.require<std::string>("name");
      const bool connect = o.get<bool>("connect", false);
      return std::make_unique<Factory>(
          [this, name, connect] { return std::make_unique<Deferrer>(name, events, connect); });
    });
  }
  Chain chain(const char* text) { return Chain(types, json::parse(text)); }
  void expect_events(const Events& expected) {
    BOOST_TEST(events == expected, boost::test_tools::per_element());
    events.clear();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(pipeline, Fixture)

BOOST_AUTO_TEST_CASE(upstream_visits_in_chain_order_downstream_in_reverse) {
  auto c = chain(R"([{"type": "tag", "name": "a"}, {"type": "tag", "name": "b"},
                     {"type": "tag", "name": "c"}])");
  Harness h(c);
  expect_events({"a open", "b open", "c open"});
  h.feed(Direction::upstream, "x");
  BOOST_TEST(h.take(Direction::upstream) == "x[a][b][c]");
  expect_events({"a upstream x", "b upstream x[a]", "c upstream x[a][b]"});
  h.feed(Direction::downstream, "y");
  BOOST_TEST(h.take(Direction::downstream) == "y[c][b][a]");
  expect_events({"c downstream y", "b downstream y[c]", "a downstream y[c][b]"});
  h.finish(Direction::downstream);
  BOOST_TEST(h.ended(Direction::downstream));
  BOOST_TEST(!h.ended(Direction::upstream));
  expect_events({"c end downstream", "b end downstream", "a end downstream"});
}

BOOST_AUTO_TEST_CASE(bytes_injected_during_on_data_go_before_the_passed_chunk) {
  auto c = chain(R"([{"type": "inject", "name": "i"}, {"type": "tag", "name": "b"}])");
  Harness h(c);
  events.clear();
  h.feed(Direction::upstream, "x");
  BOOST_TEST(h.take(Direction::upstream) == "<[b]x[b]");
  expect_events({"i upstream x", "b upstream <", "b upstream x"});
}

BOOST_AUTO_TEST_CASE(hold_and_resume_keep_order_and_defer_the_end) {
  auto c = chain(R"([{"type": "delay", "name": "d"}, {"type": "tag", "name": "b"}])");
  Harness h(c);
  events.clear();
  h.feed(Direction::upstream, "1");
  BOOST_TEST(h.paused(Direction::upstream));
  h.feed(Direction::upstream, "2");
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "");
  BOOST_TEST(!h.ended(Direction::upstream));
  BOOST_TEST(h.pending_timers() == 1u);
  // Downstream is not held meanwhile.
  h.feed(Direction::downstream, "z");
  BOOST_TEST(h.take(Direction::downstream) == "z[b]");
  expect_events(
      {"d upstream 1", "d upstream 2", "d end upstream", "b downstream z", "d downstream z[b]"});

  h.advance(9ms);
  BOOST_TEST(h.paused(Direction::upstream));
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(1ms);
  BOOST_TEST(!h.paused(Direction::upstream));
  BOOST_TEST(h.take(Direction::upstream) == "1[b]2[b]");
  BOOST_TEST(h.ended(Direction::upstream));
  expect_events({"b upstream 1", "b upstream 2", "b end upstream"});
}

BOOST_AUTO_TEST_CASE(verdict_close_closes_with_a_reason_naming_the_type) {
  auto c = chain(R"([{"type": "tag", "name": "a"}, {"type": "closer", "name": "x"},
                     {"type": "tag", "name": "c"}])");
  Harness h(c);
  events.clear();
  h.feed(Direction::upstream, "data");
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason() == "closed by middleware closer");
  BOOST_TEST(!h.reset());  // a verdict: the peers get a FIN
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.feed(Direction::upstream, "more");  // after the close nothing runs
  h.shut("client closed");
  expect_events({"a upstream data", "x upstream data[a]", "a close closed by middleware closer",
                 "x close closed by middleware closer", "c close closed by middleware closer"});
}

BOOST_AUTO_TEST_CASE(a_throwing_middleware_closes_with_its_message) {
  auto c = chain(R"([{"type": "thrower", "name": "t"}, {"type": "tag", "name": "b"}])");
  Harness h(c);
  events.clear();
  h.feed(Direction::upstream, "x");
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason() == "middleware thrower threw in on_data: boom");
  BOOST_TEST(h.reset());  // a failure: the chunk is lost, the peers get a reset
  BOOST_TEST(h.take(Direction::upstream) == "");
  expect_events({"t upstream x"});
}

BOOST_AUTO_TEST_CASE(on_close_runs_once_on_every_middleware_when_on_open_rejects) {
  auto c = chain(R"([{"type": "tag", "name": "a"}, {"type": "rejecter", "name": "r"},
                     {"type": "tag", "name": "c"}])");
  {
    Harness h(c);
    BOOST_TEST(h.closed());
    BOOST_TEST(h.close_reason() == "rejected");
    BOOST_TEST(!h.connected());
    expect_events({"a open", "r open"});  // c's on_open never runs
    h.feed(Direction::upstream, "x");
    h.shut("client closed");
    h.shut("again");
    expect_events({"a close rejected", "r close rejected", "c close rejected"});
  }
  expect_events({});  // destroying the harness does not close again
}

BOOST_AUTO_TEST_CASE(send_in_the_opposite_direction_replies_to_the_client) {
  auto c = chain(R"([{"type": "tag", "name": "a"}, {"type": "responder", "name": "r"},
                     {"type": "tag", "name": "c"}])");
  Harness h(c);
  events.clear();
  h.feed(Direction::upstream, "ping");
  BOOST_TEST(h.take(Direction::upstream) == "");
  BOOST_TEST(h.take(Direction::downstream) == "re:ping[a][a]");
  expect_events({"a upstream ping", "r upstream ping[a]", "a downstream re:ping[a]"});
}

BOOST_AUTO_TEST_CASE(client_half_close_ends_downstream_only_when_never_connected) {
  {
    auto c = chain(R"([{"type": "deferrer", "name": "d"}])");
    Harness h(c);
    BOOST_TEST(h.deferred());
    events.clear();
    h.finish(Direction::upstream);
    BOOST_TEST(h.ended(Direction::upstream));
    BOOST_TEST(h.ended(Direction::downstream));
    expect_events({"d end upstream", "d end downstream"});
  }
  {
    auto c = chain(R"([{"type": "deferrer", "name": "d", "connect": true}])");
    Harness h(c);
    h.feed(Direction::upstream, "x");
    BOOST_TEST(h.connected());
    h.finish(Direction::upstream);
    BOOST_TEST(h.ended(Direction::upstream));
    BOOST_TEST(!h.ended(Direction::downstream));
  }
  {
    auto c = chain(R"([{"type": "tag", "name": "a"}])");
    Harness h(c);
    h.finish(Direction::upstream);
    BOOST_TEST(!h.ended(Direction::downstream));
  }
}

BOOST_AUTO_TEST_CASE(a_layers_edge_runs_at_the_server_edge_and_layers_nest) {
  auto c = chain(R"([{"type": "side", "name": "a"}, {"type": "layer", "name": "L"},
                     {"type": "side", "name": "b"}, {"type": "layer", "name": "M"},
                     {"type": "side", "name": "c"}])");
  Harness h(c);
  // Opened in pipeline order; between a layer and its edge, middlewares see messages.
  expect_events({"a open",      "a stream",    "L open",      "L stream",    "b open",
                 "b messages",  "M open",      "M messages",  "c open",      "c messages",
                 "M' open",     "M' messages", "L' open",     "L' stream",   "a connected",
                 "L connected", "b connected", "M connected", "c connected", "M' connected",
                 "L' connected"});
  h.feed(Direction::upstream, "x");
  BOOST_TEST(h.take(Direction::upstream) == "x[a][L][b][M][c][M'][L']");
  events.clear();
  h.feed(Direction::downstream, "y");
  BOOST_TEST(h.take(Direction::downstream) == "y[L'][M'][c][M][b][L][a]");
  events.clear();
  h.finish(Direction::upstream);
  BOOST_TEST(h.ended(Direction::upstream));
  expect_events({"a end upstream", "L end upstream", "b end upstream", "M end upstream",
                 "c end upstream", "M' end upstream", "L' end upstream"});
  h.shut("done");
  BOOST_TEST(events.size() == 7u);  // on_close reaches both halves of every layer
}

BOOST_AUTO_TEST_CASE(inside_a_layer_an_empty_chunk_is_a_message_and_drop_discards_it) {
  auto c = chain(R"([{"type": "side", "name": "a"}, {"type": "layer", "name": "L"},
                     {"type": "side", "name": "b"}])");
  Harness h(c);
  events.clear();
  // a's empty chunk stops at a (a byte stream); L's goes on to b and L' (messages).
  h.feed(Direction::upstream, "");
  expect_events({"a upstream "});
  h.feed(Direction::downstream, "");
  expect_events({"L' downstream ", "b downstream ", "L downstream "});
  // An empty chunk never reaches the socket.
  BOOST_TEST(h.take(Direction::downstream).empty());
  h.feed(Direction::upstream, "drop");
  expect_events({"a upstream drop"});
  BOOST_TEST(h.take(Direction::upstream).empty());
}

BOOST_AUTO_TEST_CASE(bytes_sent_from_on_open_wait_until_every_on_open_ran) {
  auto c = chain(R"([{"type": "tag", "name": "a"}, {"type": "greeter", "name": "g"},
                     {"type": "tag", "name": "b"}])");
  Harness h(c);
  expect_events({"a open", "g open", "b open", "b upstream hi", "a downstream hello"});
  BOOST_TEST(h.take(Direction::upstream) == "hi[b]");
  BOOST_TEST(h.take(Direction::downstream) == "hello[a]");
}

// While delay releases "x", the responder's answer makes the bouncer inject "y", which reaches
// delay again before its release is over: delay holds it, and the direction must still resume
// once "y" is released too (and "y" must not overtake).
BOOST_AUTO_TEST_CASE(a_chunk_that_comes_back_while_its_holder_releases_is_held_in_order) {
  auto c = chain(R"([{"type": "bouncer", "name": "q"}, {"type": "delay", "name": "d"},
                     {"type": "responder", "name": "r"}])");
  Harness h(c);
  h.feed(Direction::upstream, "x");
  BOOST_TEST(h.paused(Direction::upstream));
  h.advance(10ms);
  BOOST_TEST(h.take(Direction::downstream) == "re:x");
  BOOST_TEST(h.paused(Direction::upstream));  // "y" is held by delay now
  h.advance(10ms);
  BOOST_TEST(h.take(Direction::downstream) == "re:y");
  BOOST_TEST(!h.paused(Direction::upstream));
  h.feed(Direction::upstream, "z");
  h.advance(10ms);
  BOOST_TEST(h.take(Direction::downstream) == "re:z");
  BOOST_TEST(!h.paused(Direction::upstream));
}

BOOST_AUTO_TEST_CASE(a_create_that_throws_after_a_layer_still_closes_the_layers_edge) {
  types.add_middleware("broken", "test", [](sluice::Options&, sluice::Services&) {
    return std::make_unique<Factory>(
        []() -> std::unique_ptr<sluice::Middleware> { throw std::runtime_error("no"); });
  });
  auto c = chain(R"([{"type": "layer", "name": "L"}, {"type": "broken"}])");
  Harness h(c);
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason() == "middleware broken threw in create: no");
  events.clear();
  h.shut("done");
  expect_events({"L close middleware broken threw in create: no",
                 "L' close middleware broken threw in create: no"});
}

BOOST_AUTO_TEST_CASE(a_create_that_gives_null_closes_with_a_reset_and_a_reason) {
  types.add_middleware("nothing", "test", [](sluice::Options&, sluice::Services&) {
    return std::make_unique<Factory>([]() -> std::unique_ptr<sluice::Middleware> { return {}; });
  });
  auto c = chain(R"([{"type": "tag", "name": "a"}, {"type": "nothing"},
                     {"type": "tag", "name": "c"}])");
  Harness h(c);
  BOOST_TEST(h.closed());
  BOOST_TEST(h.reset());
  BOOST_TEST(h.close_reason() == "middleware nothing made no middleware (create gave null)");
  events.clear();
  h.feed(Direction::upstream, "x");  // nothing runs after the close
  h.shut("done");
  expect_events({"a close middleware nothing made no middleware (create gave null)"});
}

BOOST_AUTO_TEST_SUITE_END()
