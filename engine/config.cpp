#include "config.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace sluice {

namespace {

template <class F>
auto as_config_error(const std::string& path, F&& parse) {
  try {
    return parse();
  } catch (const std::invalid_argument& e) {
    throw ConfigError(path, e.what());
  }
}

ListenerConfig parse_listener(Options& o) {
  ListenerConfig l;
  l.path = o.path();
  const auto listen = o.require<std::string>("listen");
  l.listen = as_config_error(o.path_of("listen"), [&] { return parse_ip_port(listen); });
  l.name = o.get<std::string>("name", listen);
  if (l.name.empty()) o.fail("name", "must not be empty");
  if (auto up = o.optional<std::string>("upstream"))
    l.upstream = as_config_error(o.path_of("upstream"), [&] { return parse_host_port(*up); });
  if (l.upstream && l.upstream->port == 0) o.fail("upstream", "port 0 is not a valid upstream");
  l.connect_timeout = o.duration("connect_timeout", l.connect_timeout);
  if (l.connect_timeout.count() == 0) o.fail("connect_timeout", "must be more than 0");
  l.idle_timeout = o.duration("idle_timeout", l.idle_timeout);
  l.high_watermark = o.size("high_watermark", l.high_watermark);
  l.low_watermark = o.size("low_watermark", std::min(l.low_watermark, l.high_watermark / 4));
  if (l.high_watermark < 1024) o.fail("high_watermark", "must be at least 1024 bytes");
  if (l.low_watermark >= l.high_watermark)
    o.fail("low_watermark",
           "must be less than high_watermark (" + std::to_string(l.high_watermark) + ")");
  l.nodelay = o.get<bool>("nodelay", l.nodelay);
  l.splice = o.get<bool>("splice", l.splice);
  if (o.has("middlewares")) {
    o.accept("middlewares");
    l.middlewares = o.json().at("middlewares");
    if (!l.middlewares.is_array())
      o.fail("middlewares", "expected an array, got " + Options::describe(l.middlewares));
    for (std::size_t i = 0; i < l.middlewares.size(); ++i)
      if (!l.middlewares[i].is_object())
        throw ConfigError(o.path_of("middlewares") + "/" + std::to_string(i),
                          "expected an object like {\"type\": \"hexdump\"}, got " +
                              Options::describe(l.middlewares[i]));
  }
  o.finish();
  return l;
}

}  // namespace

Config parse_config(const nlohmann::json& root, std::string source,
                    const std::filesystem::path& base_dir) {
  Options o(root, "");
  Config c;
  c.source = std::move(source);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  c.workers = o.get<unsigned>("workers", cores);
  if (c.workers == 0 || c.workers > 1024) o.fail("workers", "expected 1 to 1024");
  c.max_pipes = o.get<unsigned>("max_pipes", c.max_pipes);
  if (c.max_pipes > 4096) o.fail("max_pipes", "expected 0 to 4096");
  const auto busy_poll_us = o.get<unsigned>("busy_poll_us", 0);
  if (busy_poll_us > 10000) o.fail("busy_poll_us", "expected 0 to 10000");
  c.busy_poll = std::chrono::microseconds(busy_poll_us);
  const auto dirs = o.get<std::vector<std::string>>("plugin_dirs", {});
  for (const auto& d : dirs) {
    std::filesystem::path p(d);
    c.plugin_dirs.push_back(p.is_absolute() ? p : base_dir / p);
  }
  c.drain_timeout = o.duration("drain_timeout", c.drain_timeout);
  if (o.has("extensions")) {
    Options ext = o.object("extensions");
    for (auto it = ext.json().begin(); it != ext.json().end(); ++it) {
      Options one = ext.object(it.key());
      if (!one.has("type")) one.fail("type", "missing (required)");
    }
    c.extensions = ext.json();
  }
  if (!o.has("listeners")) o.fail("listeners", "missing (required): an array of listeners");
  o.accept("listeners");
  const auto& ls = root.at("listeners");
  if (!ls.is_array() || ls.empty())
    o.fail("listeners", "expected a non-empty array of listeners, got " + Options::describe(ls));
  std::set<std::string> names;
  std::set<boost::asio::ip::tcp::endpoint> addresses;
  for (std::size_t i = 0; i < ls.size(); ++i) {
    Options lo(ls[i], "/listeners/" + std::to_string(i));
    ListenerConfig l = parse_listener(lo);
    if (l.listen.port() != 0 && !addresses.insert(l.listen).second)
      lo.fail("listen", "another listener already listens on " + to_string(l.listen));
    if (!names.insert(l.name).second)
      throw ConfigError(lo.has("name") ? lo.path_of("name") : lo.path_of("listen"),
                        "duplicate listener name \"" + l.name + "\"");
    c.listeners.push_back(std::move(l));
  }
  o.finish();
  return c;
}

Config load_config(const std::filesystem::path& file) {
  const std::string source = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw FileConfigError(source,
                          ConfigError("", std::string("cannot read: ") + std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text.str(), nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 3, column 5: ...".
    std::string what = e.what();
    auto at = what.find("parse error");
    throw FileConfigError(
        source,
        ConfigError("", "invalid JSON: " + (at == std::string::npos ? what : what.substr(at))));
  }
  try {
    return parse_config(root, source, file.parent_path());
  } catch (const ConfigError& e) {
    throw FileConfigError(source, e);
  }
}

const char* builtin_default_config() {
  return R"({
  "listeners": [
    {
      "name": "demo",
      "listen": "127.0.0.1:7000",
      "upstream": "127.0.0.1:7001",
      "middlewares": [{ "type": "hexdump", "max_bytes": 256 }]
    },
    {
      "name": "echo",
      "listen": "127.0.0.1:7001",
      "middlewares": [{ "type": "echo" }]
    }
  ]
})";
}

}  // namespace sluice
