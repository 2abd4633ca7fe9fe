#include "plugins.hpp"

#include <dlfcn.h>
#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstring>

namespace sluice {

namespace {

std::string describe(const PluginAbi& abi) {
  return "ABI version " + std::to_string(abi.abi_version) + " (" + abi.compiler + ", Boost " +
         abi.boost + ")";
}

// Collects one plugin's registrations so a failing plugin registers nothing.
class Staging final : public Registry {
 public:
  Staging(const std::map<std::string, Plugins::Type, std::less<>>& existing, std::string file)
      : existing_(existing), file_(std::move(file)) {}
  void add_middleware(std::string_view type, std::string_view description,
                      MiddlewareMaker make) override {
    add({std::string(type), Plugins::Kind::middleware, std::string(description), file_, abi_version,
         std::move(make), nullptr});
  }
  void add_extension(std::string_view type, std::string_view description,
                     ExtensionMaker make) override {
    add({std::string(type), Plugins::Kind::extension, std::string(description), file_, abi_version,
         nullptr, std::move(make)});
  }
  std::vector<Plugins::Type> types;

 private:
  void add(Plugins::Type t) {
    if (t.name.empty()) throw PluginError("registers a type with an empty name");
    if (auto it = existing_.find(t.name); it != existing_.end())
      throw PluginError("registers type \"" + t.name + "\", already registered by " +
                        it->second.file);
    for (const auto& mine : types)
      if (mine.name == t.name) throw PluginError("registers type \"" + t.name + "\" twice");
    types.push_back(std::move(t));
  }
  const std::map<std::string, Plugins::Type, std::less<>>& existing_;
  std::string file_;
};

}  // namespace

void Plugins::load(const std::filesystem::path& dir_or_file) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir_or_file, ec)) return load_file(dir_or_file);
  if (!std::filesystem::is_directory(dir_or_file, ec))
    throw PluginError(dir_or_file.string() + ": no such plugin file or folder");
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_or_file, ec))
    if (entry.path().extension() == ".so" && entry.is_regular_file()) files.push_back(entry.path());
  if (ec) throw PluginError(dir_or_file.string() + ": cannot list: " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) load_file(f);
}

void Plugins::load_file(const std::filesystem::path& file) {
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(file, ec);
  const auto key = ec ? file : canonical;
  if (loaded_.count(key)) return;
  const std::string name = file.string();
  auto fail = [&](const std::string& why) -> PluginError {
    return PluginError("plugin " + name + ": " + why);
  };

  boost::dll::shared_library lib;
  boost::system::error_code load_ec;
  lib.load(boost::dll::fs::path(file.string()),
           boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, load_ec);
  if (load_ec || !lib.is_loaded()) {
    // Boost.DLL clears dlerror(); ask the loader again for its own words.
    std::string why = load_ec.message();
    if (void* h = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      dlclose(h);
    } else if (const char* dl = dlerror()) {
      why = dl;
      if (why.starts_with(name + ": ")) why.erase(0, name.size() + 2);  // named already
    }
    throw fail("cannot load as a shared library: " + why);
  }
  if (!lib.has("sluice_plugin_abi"))
    throw fail(
        "missing entry point sluice_plugin_abi (not a sluice plugin? build it with "
        "SLUICE_PLUGIN(...) from <sluice/plugin.hpp>)");
  const PluginAbi& abi = lib.get_alias<const PluginAbi&()>("sluice_plugin_abi")();
  if (abi.abi_version != this_abi.abi_version || std::strcmp(abi.compiler, this_abi.compiler) ||
      std::strcmp(abi.boost, this_abi.boost))
    throw fail("built for " + describe(abi) + ", but this sluice has " + describe(this_abi) +
               "; rebuild the plugin against this sluice's SDK");
  if (!lib.has("sluice_plugin_register"))
    throw fail("missing entry point sluice_plugin_register (use SLUICE_PLUGIN(...))");
  auto register_fn = lib.get_alias<void(Registry&)>("sluice_plugin_register");

  Staging staging(types_, name);
  try {
    register_fn(staging);
  } catch (const std::exception& e) {
    throw fail(std::string("registration failed: ") + e.what());
  } catch (...) {
    throw fail("registration failed: it threw something that is not a std::exception");
  }
  if (staging.types.empty()) throw fail("registers no middleware or extension type");
  for (auto& t : staging.types) {
    t.abi = abi.abi_version;
    types_.emplace(t.name, std::move(t));
  }
  libraries_.push_back(std::move(lib));
  loaded_[key] = true;
}

const Plugins::Type* Plugins::find(std::string_view name, Kind kind) const {
  auto it = types_.find(name);
  return it == types_.end() || it->second.kind != kind ? nullptr : &it->second;
}

std::vector<const Plugins::Type*> Plugins::all() const {
  std::vector<const Type*> out;
  for (const auto& [name, t] : types_) out.push_back(&t);
  return out;
}

std::string Plugins::names(Kind kind) const {
  std::string out;
  for (const auto& [name, t] : types_)
    if (t.kind == kind) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

std::filesystem::path Plugins::builtin_dir() {
  const std::filesystem::path exe = boost::dll::program_location().string();
  return exe.parent_path().parent_path() / "lib" / "sluice";
}

}  // namespace sluice
