// wrong-abi: a plugin built for another ABI version (999). The loader must refuse it before
// calling anything else, naming both versions; its (otherwise valid) register function and the
// type it registers must never be seen.
#include <memory>

#include "sluice/plugin.hpp"

namespace {

const sluice::PluginAbi& other_abi() {
  static constexpr sluice::PluginAbi abi{999, SLUICE_COMPILER_ID, BOOST_LIB_VERSION};
  return abi;
}

class Nothing final : public sluice::MiddlewareFactory {
 public:
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<sluice::Middleware>();
  }
};

void register_types(sluice::Registry& registry) {
  registry.add_middleware("wrong-abi", "must never be registered",
                          [](sluice::Options&, sluice::Services&) {
                            return std::unique_ptr<sluice::MiddlewareFactory>(new Nothing);
                          });
}

}  // namespace

// What SLUICE_PLUGIN expands to, with another identity.
namespace sluice_plugin_exports {
BOOST_DLL_ALIAS(other_abi, sluice_plugin_abi)
BOOST_DLL_ALIAS(register_types, sluice_plugin_register)
}  // namespace sluice_plugin_exports
