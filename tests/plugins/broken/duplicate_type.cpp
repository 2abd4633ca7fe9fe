// duplicate-type: registers a new type, then "hexdump", which the built-in hexdump.so already
// registered. Loaded after the built-ins, the whole plugin must be refused.
#include <memory>

#include "sluice/plugin.hpp"

namespace {

std::unique_ptr<sluice::MiddlewareFactory> make(sluice::Options&, sluice::Services&) {
  return nullptr;
}

void register_types(sluice::Registry& registry) {
  registry.add_middleware("duplicate-type", "must never be registered", make);
  registry.add_middleware("hexdump", "clashes with the built-in hexdump", make);
}

}  // namespace

SLUICE_PLUGIN(register_types)
