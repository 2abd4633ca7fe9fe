// throwing-register: registers a type, then throws from its register function. The loader must
// report "boom" and keep nothing of what was registered before the throw.
#include <memory>
#include <stdexcept>

#include "sluice/plugin.hpp"

namespace {

void register_types(sluice::Registry& registry) {
  registry.add_middleware("throwing-register", "must never be registered",
                          [](sluice::Options&, sluice::Services&) {
                            return std::unique_ptr<sluice::MiddlewareFactory>();
                          });
  throw std::runtime_error("boom");
}

}  // namespace

SLUICE_PLUGIN(register_types)
