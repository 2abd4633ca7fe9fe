#pragma once
// The config file's schema (documented key by key in config/README.md), parsed into plain values.
// Every error is a ConfigError carrying the JSON pointer of the offending value; load_config adds
// the file name. Middleware and extension options stay JSON here: their plugins validate them
// when the runtime is built.
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "address.hpp"
#include "sluice/options.hpp"

namespace sluice {

struct ListenerConfig {
  std::string name;
  std::string path;  // JSON pointer, e.g. "/listeners/0"
  boost::asio::ip::tcp::endpoint listen;
  std::optional<HostPort> upstream;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds idle_timeout{15 * 60 * 1000};  // 0 = off
  std::uint64_t high_watermark = 1024 * 1024;
  std::uint64_t low_watermark = 256 * 1024;
  bool nodelay = true;
  bool splice = true;  // zero-copy bulk transfers when no middleware needs the bytes
  nlohmann::json middlewares = nlohmann::json::array();
};

struct Config {
  std::string source;  // the file name, or a description for configs not read from a file
  unsigned workers = 0;
  unsigned max_pipes = 64;                 // per worker, for splice; each costs two descriptors
  std::chrono::microseconds busy_poll{0};  // per worker: the longest it polls (PollWindow)
  std::vector<std::filesystem::path> plugin_dirs;
  std::chrono::milliseconds drain_timeout{30000};
  nlohmann::json extensions = nlohmann::json::object();
  std::vector<ListenerConfig> listeners;
};

// A ConfigError with the file it came from, as printed to the user:
// "proxy.json: /listeners/0/upstream: expected HOST:PORT, ...".
struct FileConfigError : std::runtime_error {
  FileConfigError(const std::string& source, const ConfigError& e)
      : std::runtime_error(source + ": " + e.what()), path(e.path()) {}
  std::string path;
};

// `base_dir` resolves relative plugin_dirs (the config file's folder).
Config parse_config(const nlohmann::json& root, std::string source,
                    const std::filesystem::path& base_dir);
// Reads and parses a file; throws FileConfigError (also for unreadable files and bad JSON).
Config load_config(const std::filesystem::path& file);

// The config `sluice run` uses with neither -c nor --listen.
const char* builtin_default_config();

}  // namespace sluice
