#include "echo/echo.hpp"

#include <memory>

namespace sluice::builtin {
namespace {

class Echo final : public Middleware {
 public:
  // Deferred for good: connect_upstream() is never called, so nothing ever connects.
  void on_open(Context& ctx) override { ctx.defer_connect(); }

  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    if (dir == Direction::upstream) {
      ctx.send(Direction::downstream, chunk.view());
      chunk.clear();
    }
    return Verdict::pass;
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
