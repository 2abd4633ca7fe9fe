// no-register: a correct sluice_plugin_abi, but no sluice_plugin_register.
#include "sluice/plugin.hpp"

namespace sluice_plugin_exports {
BOOST_DLL_ALIAS(sluice::detail::plugin_abi, sluice_plugin_abi)
}  // namespace sluice_plugin_exports
