#pragma once
// Plugin: a shared library that registers middleware and extension types by name. It exports,
// through SLUICE_PLUGIN(fn), the ABI identity (`sluice_plugin_abi`, checked first) and one
// registration function (`sluice_plugin_register`) that the loader calls with a Registry.
//
// Makers run at config load (start-up and each reload) on the main thread. They read their
// options through `Options` (unknown keys are an error once the maker returns) and throw
// ConfigError for a bad value. Objects a plugin creates are destroyed before it is unloaded.
#include <boost/config.hpp>
#include <boost/dll/alias.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/abi.hpp"
#include "sluice/extension.hpp"
#include "sluice/log.hpp"
#include "sluice/middleware.hpp"
#include "sluice/options.hpp"

namespace sluice {

// What a maker may use besides its options.
class Services {
 public:
  virtual void log(Level level, std::string_view message) = 0;
  // The extension named `name`, or nullptr.
  virtual Extension* find_extension(std::string_view name) = 0;

  // The extension named by the string option `key`, checked to be a T (T::type_name).
  template <class T>
  T& extension(Options& options, std::string_view key) {
    const auto name = options.require<std::string>(key);
    Extension* found = find_extension(name);
    if (!found) options.fail(key, "no extension named \"" + name + "\" in /extensions");
    if (found->type() != T::type_name)
      options.fail(key, "extension \"" + name + "\" is of type \"" + std::string(found->type()) +
                            "\", expected \"" + std::string(T::type_name) + "\"");
    return static_cast<T&>(*found);
  }

 protected:
  ~Services() = default;
};

using MiddlewareMaker = std::function<std::unique_ptr<MiddlewareFactory>(Options&, Services&)>;
using ExtensionMaker = std::function<std::unique_ptr<Extension>(Options&, Services&)>;

class Registry {
 public:
  // `description`: one line for `sluice plugins`. Registering a name twice (in this plugin or
  // across plugins) is a load error.
  virtual void add_middleware(std::string_view type, std::string_view description,
                              MiddlewareMaker make) = 0;
  virtual void add_extension(std::string_view type, std::string_view description,
                             ExtensionMaker make) = 0;

 protected:
  ~Registry() = default;
};

namespace detail {
inline const PluginAbi& plugin_abi() {
  return this_abi;
}
}  // namespace detail

}  // namespace sluice

// Use once per plugin, at namespace scope: SLUICE_PLUGIN(register_my_types)
// with `void register_my_types(sluice::Registry&)`.
#define SLUICE_PLUGIN(register_fn)                               \
  namespace sluice_plugin_exports {                              \
  BOOST_DLL_ALIAS(sluice::detail::plugin_abi, sluice_plugin_abi) \
  BOOST_DLL_ALIAS(register_fn, sluice_plugin_register)           \
  }
