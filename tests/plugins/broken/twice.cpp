// twice: registers the same new type twice within itself.
#include <memory>

#include "sluice/plugin.hpp"

namespace {

std::unique_ptr<sluice::MiddlewareFactory> make(sluice::Options&, sluice::Services&) {
  return nullptr;
}

void register_types(sluice::Registry& registry) {
  registry.add_middleware("twice", "first", make);
  registry.add_middleware("twice", "second", make);
}

}  // namespace

SLUICE_PLUGIN(register_types)
