#include "runtime.hpp"

#include "log.hpp"

namespace sluice {

namespace {

template <class F>
void with_source(const Config& config, F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    throw FileConfigError(config.source, e);
  }
}

// Runs a plugin's maker; whatever it throws is reported at its options' JSON path.
template <class F>
auto make_at(const Options& o, F&& make) {
  try {
    return make();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(o.path(), e.what());
  } catch (...) {
    throw ConfigError(o.path(), "the plugin threw an unknown exception");
  }
}

}  // namespace

void load_plugins(const Config& config, Plugins& plugins) {
  with_source(config, [&] {
    const auto builtin = Plugins::builtin_dir();
    std::error_code ec;
    if (!std::filesystem::exists(builtin, ec)) {
      // A binary copied away from its install: it still runs plugins from plugin_dirs.
      spdlog::warn("no built-in plugins: {} does not exist", builtin.string());
    } else {
      try {
        plugins.load(builtin);
      } catch (const PluginError& e) {
        throw ConfigError("", std::string("built-in plugins: ") + e.what());
      }
    }
    for (std::size_t i = 0; i < config.plugin_dirs.size(); ++i) {
      try {
        plugins.load(config.plugin_dirs[i]);
      } catch (const PluginError& e) {
        throw ConfigError("/plugin_dirs/" + std::to_string(i), e.what());
      }
    }
  });
}

Extensions::~Extensions() {
  stop();
  // In reverse order of creation (name order: the JSON object keeps its keys sorted).
  while (!extensions_.empty()) extensions_.pop_back();
}

void Extensions::make(const Config& config, const Plugins& plugins) {
  source = config.extensions;
  with_source(config, [&] {
    Options root(config.extensions, "/extensions");
    for (auto it = config.extensions.begin(); it != config.extensions.end(); ++it) {
      Options o = root.object(it.key());
      const auto type = o.require<std::string>("type");
      const auto* t = plugins.find(type, Plugins::Kind::extension);
      if (!t)
        o.fail("type", "unknown extension type \"" + type +
                           "\" (known: " + plugins.names(Plugins::Kind::extension) + ")");
      auto ext = make_at(o, [&] { return t->make_extension(o, *this); });
      if (!ext) o.fail("type", "plugin " + t->file + " made no extension");
      o.finish();
      extensions_.emplace_back(it.key(), std::move(ext));
    }
  });
}

void Extensions::start() {
  for (auto& [name, ext] : extensions_) {
    spdlog::debug("starting extension {} ({})", name, ext->type());
    ext->start();
  }
  started_ = true;
}

void Extensions::stop() {
  if (!started_) return;
  started_ = false;
  for (auto it = extensions_.rbegin(); it != extensions_.rend(); ++it) {
    try {
      it->second->stop();
    } catch (const std::exception& e) {
      spdlog::warn("extension {}: stop failed: {}", it->first, e.what());
    }
  }
}

Extension* Extensions::find_extension(std::string_view name) {
  for (auto& [n, ext] : extensions_)
    if (n == name) return ext.get();
  return nullptr;
}

void Extensions::log(Level level, std::string_view message) {
  spdlog::log(to_spdlog(level), "{}", message);
}

std::string data_path(const ListenerSpec& spec, const Config& config) {
  if (!spec.blind) {
    std::string readers;
    for (std::size_t i = 0; i < spec.factories.size(); ++i)
      if (spec.factories[i]->sees_bytes()) readers += (readers.empty() ? "" : ", ") + spec.types[i];
    return "bytes copied through the chain (" + readers + " read them)";
  }
  if (!spec.config.splice) return "bytes copied, skipping the chain (\"splice\": false)";
  if (config.max_pipes == 0) return "bytes copied, skipping the chain (\"max_pipes\": 0)";
  return "bulk transfers zero-copy (splice)";
}

Runtime build_runtime(Config config, const Plugins& plugins, Services& services) {
  Runtime rt;
  with_source(config, [&] {
    for (const auto& lc : config.listeners) {
      auto spec = std::make_shared<ListenerSpec>();
      spec->config = lc;
      for (std::size_t i = 0; i < lc.middlewares.size(); ++i) {
        Options o(lc.middlewares[i], lc.path + "/middlewares/" + std::to_string(i));
        const auto type = o.require<std::string>("type");
        const auto* t = plugins.find(type, Plugins::Kind::middleware);
        if (!t)
          o.fail("type", "unknown middleware type \"" + type +
                             "\" (known: " + plugins.names(Plugins::Kind::middleware) + ")");
        auto factory = make_at(o, [&] { return t->make_middleware(o, services); });
        if (!factory) o.fail("type", "plugin " + t->file + " made no factory");
        o.finish();
        spec->types.push_back(type);
        if (factory->sees_bytes()) spec->blind = false;
        spec->factories.push_back(std::move(factory));
      }
      for (std::size_t i = 0; i < spec->factories.size(); ++i)
        spec->stages.push_back({spec->types[i], spec->factories[i].get()});
      if (!lc.upstream) {
        // Without an upstream, only a middleware can give the channel somewhere to go; say so
        // at start-up rather than closing every channel with "no upstream".
        if (spec->factories.empty())
          throw ConfigError(lc.path + "/upstream",
                            "missing: a listener without middlewares needs an upstream");
      }
      rt.listeners.push_back(std::move(spec));
    }
  });
  rt.config = std::move(config);
  return rt;
}

void start_middlewares(const Runtime& rt) {
  with_source(rt.config, [&] {
    for (const auto& spec : rt.listeners)
      for (std::size_t i = 0; i < spec->factories.size(); ++i) {
        const Options at(spec->config.middlewares[i],
                         spec->config.path + "/middlewares/" + std::to_string(i));
        make_at(at, [&] { spec->factories[i]->start(); });
      }
  });
}

}  // namespace sluice
