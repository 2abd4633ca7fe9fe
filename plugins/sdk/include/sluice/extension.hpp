#pragma once
// Extension: a named, engine-wide service made from the config's "extensions" object. Started
// before any listener opens and stopped after the drain, on the main thread. Middlewares of every
// worker may call it at once, so its public functions must be thread-safe.
// Middlewares find one by name through Services::extension<T>(), which checks that the
// extension's type() equals T::type_name (a string compare, so it works across shared libraries
// without relying on RTTI being merged).
#include <string_view>

namespace sluice {

class Extension {
 public:
  virtual ~Extension() = default;
  virtual std::string_view type() const = 0;
  virtual void start() {}
  virtual void stop() {}
};

}  // namespace sluice
