#pragma once
// Plugins: the shared libraries loaded so far and the middleware/extension types they registered.
// Loading checks, in order: the file loads as a shared library, it exports sluice_plugin_abi, the
// ABI version and toolchain match this binary's, it exports sluice_plugin_register, registration
// succeeds without a duplicate type name. Any failure throws PluginError naming the file, and
// registers nothing from it. Libraries are never unloaded: the objects they made may be alive in
// old channels after a reload, and a library's code must outlive them.
#include <boost/dll/shared_library.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/plugin.hpp"

namespace sluice {

struct PluginError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Plugins {
 public:
  enum class Kind { middleware, extension };
  struct Type {
    std::string name;
    Kind kind;
    std::string description;
    std::string file;
    std::uint32_t abi;
    MiddlewareMaker make_middleware;
    ExtensionMaker make_extension;
  };

  // Every "*.so" file directly in `dir`, in name order; or `dir` itself if it is a file.
  void load(const std::filesystem::path& dir_or_file);
  void load_file(const std::filesystem::path& file);

  const Type* find(std::string_view name, Kind kind) const;
  std::vector<const Type*> all() const;
  std::string names(Kind kind) const;  // "a, b, c" for error messages

  // Where the built-in plugins of this binary live: <dir of the executable>/../lib/sluice.
  static std::filesystem::path builtin_dir();

 private:
  // Declared first so it is destroyed last, after every maker that points into a library.
  std::vector<boost::dll::shared_library> libraries_;
  std::map<std::string, Type, std::less<>> types_;
  std::map<std::filesystem::path, bool> loaded_;
};

}  // namespace sluice
