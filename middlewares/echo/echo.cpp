#include "echo/echo.hpp"

#include <memory>

namespace sluice::builtin {
namespace {

class Echo final : public Middleware {
 public:
  // Deferred for good: connect_upstream() is never called, so nothing ever connects.
  void on_open(Context& ctx) override { ctx.defer_connect(); }

  // drop, not an emptied pass: after a layer an empty chunk is an empty message and would go on
  // towards the (never connected) upstream.
  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    if (dir != Direction::upstream) return Verdict::pass;
    ctx.send(Direction::downstream, chunk.view());
    return Verdict::drop;
  }
};

class EchoFactory final : public MiddlewareFactory {
 public:
  std::unique_ptr<Middleware> create() override { return std::make_unique<Echo>(); }
};

}  // namespace

void register_echo(Registry& registry) {
  registry.add_middleware("echo", "answers the client with its own bytes; no upstream",
                          [](Options&, Services&) -> std::unique_ptr<MiddlewareFactory> {
                            return std::make_unique<EchoFactory>();
                          });
}

}  // namespace sluice::builtin
