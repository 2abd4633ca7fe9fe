#include "pass/pass.hpp"

#include <memory>

namespace sluice::builtin {
namespace {

// Overrides nothing: Middleware's defaults pass every chunk and ignore every event.
class Pass final : public Middleware {};

class PassFactory final : public MiddlewareFactory {
 public:
  std::unique_ptr<Middleware> create() override { return std::make_unique<Pass>(); }
};

}  // namespace

void register_pass(Registry& registry) {
  registry.add_middleware(
      "pass", "passes every chunk on untouched (a placeholder; the cost of one middleware)",
      [](Options&, Services&) -> std::unique_ptr<MiddlewareFactory> {
        return std::make_unique<PassFactory>();
      });
}

}  // namespace sluice::builtin
