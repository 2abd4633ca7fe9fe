#pragma once
// Runtime: a validated config made ready to serve: plugins loaded, extensions made, and for every
// listener a ListenerSpec with its middleware factories. Building one has no effect on the
// network or on files (start_middlewares has those), so `sluice check` builds one too, and a
// reload builds the new one beside the old.
// Channels share their ListenerSpec (shared_ptr), so a reload never changes a running channel.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "plugins.hpp"
#include "sluice/pipeline.hpp"
#include "sluice/plugin.hpp"

namespace sluice {

struct ListenerSpec {
  ListenerConfig config;
  std::vector<std::string> types;
  std::vector<std::unique_ptr<MiddlewareFactory>> factories;
  std::vector<Pipeline::Stage> stages;  // views of types and factories, in chain order
  // No middleware of the chain needs on_data (MiddlewareFactory::sees_bytes), so bytes skip it.
  bool blind = true;
  // ... and bulk bytes go socket to socket with splice(2), unless the config turned it off.
  bool splices() const { return config.splice && blind; }
};

// The engine-wide extensions, by name. Lives until after the last channel is gone.
class Extensions final : public Services {
 public:
  Extensions() = default;
  Extensions(const Extensions&) = delete;
  ~Extensions();
  // Makes every extension of config.extensions (not started); throws FileConfigError.
  void make(const Config& config, const Plugins& plugins);
  void start();
  void stop();
  bool empty() const { return extensions_.empty(); }
  nlohmann::json source;  // the "extensions" object they were made from

  Extension* find_extension(std::string_view name) override;
  void log(Level level, std::string_view message) override;

 private:
  std::vector<std::pair<std::string, std::unique_ptr<Extension>>> extensions_;
  bool started_ = false;
};

struct Runtime {
  Config config;
  std::vector<std::shared_ptr<const ListenerSpec>> listeners;
};

// How a listener's bytes travel, as its start-up line and `sluice check` say it: zero-copy, or
// copied and why (the middlewares that read the bytes, "splice": false or "max_pipes": 0).
std::string data_path(const ListenerSpec& spec, const Config& config);

// Loads the built-in plugins and config.plugin_dirs; throws FileConfigError naming the entry.
void load_plugins(const Config& config, Plugins& plugins);
// Builds every listener's chain with `services` for extensions; throws FileConfigError.
Runtime build_runtime(Config config, const Plugins& plugins, Services& services);
// Puts a built runtime into service: every factory's start() (files, folders), in config order.
// Throws FileConfigError at the failing middleware's JSON path (or the one it named).
void start_middlewares(const Runtime& rt);

}  // namespace sluice
