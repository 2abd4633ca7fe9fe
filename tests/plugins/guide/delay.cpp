// file: tests/plugins/guide/delay.cpp
// delay: holds every chunk for "delay" before it goes on, in "direction" ("upstream",
// "downstream" or "both"). While it holds, the engine reads no more from that side, so a slow
// link is simulated without buffering anything extra.
#include <chrono>
#include <memory>
#include <string>

#include <sluice/plugin.hpp>

namespace delay {

using sluice::Direction;

class Delay final : public sluice::Middleware {
 public:
  Delay(std::chrono::milliseconds delay, bool upstream, bool downstream)
      : delay_(delay), applies_{upstream, downstream} {}

  sluice::Verdict on_data(sluice::Context& ctx, Direction dir, sluice::Chunk&) override {
    const int d = dir == Direction::upstream ? 0 : 1;
    if (!applies_[d]) return sluice::Verdict::pass;
    if (!waiting_[d]) {
      waiting_[d] = true;
      // The Context outlives every timer: timers are cancelled when the channel closes.
      ctx.start_timer(delay_, [this, &ctx, dir, d] {
        waiting_[d] = false;
        ctx.resume(dir);  // the held chunks go on to the next middleware, in order
      });
    }
    return sluice::Verdict::hold;  // the engine keeps the chunk here until ctx.resume(dir)
  }

 private:
  std::chrono::milliseconds delay_;
  bool applies_[2];
  bool waiting_[2] = {false, false};
};

class DelayFactory final : public sluice::MiddlewareFactory {
 public:
  DelayFactory(std::chrono::milliseconds delay, bool upstream, bool downstream)
      : delay_(delay), upstream_(upstream), downstream_(downstream) {}
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<Delay>(delay_, upstream_, downstream_);
  }

 private:
  const std::chrono::milliseconds delay_;
  const bool upstream_, downstream_;
};

void register_types(sluice::Registry& registry) {
  registry.add_middleware(
      "delay", "holds every chunk for \"delay\" before it goes on",
      [](sluice::Options& options, sluice::Services&) -> std::unique_ptr<sluice::MiddlewareFactory> {
        // Bad values throw ConfigError naming e.g. /listeners/0/middlewares/1/delay.
        const auto delay = options.duration("delay", std::chrono::milliseconds(100));
        if (delay.count() == 0) options.fail("delay", "must be more than 0");
        const std::string dir = options.choice("direction", {"upstream", "downstream", "both"}, "both");
        return std::make_unique<DelayFactory>(delay, dir != "downstream", dir != "upstream");
      });
}

}  // namespace delay

SLUICE_PLUGIN(delay::register_types)
