// The sluice command line: run, check, plugins, replay. Exit status: 0 ok, 1 runtime failure,
// 2 bad usage, config or plugin (with one message naming the file and JSON path).
#include <sys/resource.h>

#include <system_error>

#include <boost/program_options.hpp>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "config.hpp"
#include "engine.hpp"
#include "log.hpp"
#include "plugins.hpp"
#include "replay.hpp"
#include "runtime.hpp"
#include "sluice/abi.hpp"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

namespace po = boost::program_options;
using nlohmann::json;

namespace sluice {
namespace {

constexpr int kOk = 0, kFailure = 1, kBadInput = 2;

const char* const kUsage = R"(usage: sluice <command> [options]

commands:
  run       proxy traffic: from a config file (-c), from --listen/--upstream/--use, or,
            with neither, from the built-in default: 127.0.0.1:7000 -> 127.0.0.1:7001 with
            hexdump, where 127.0.0.1:7001 is a built-in echo listener
  check     validate a config file (and load its plugins) without binding anything
  plugins   list the middleware and extension types found, with their plugin files
  replay    play the client side of a channel recorded by `record` against an upstream and
            compare its answer with the recording (exit 0 match, 1 differs)

  sluice <command> --help   options of one command
  sluice --version
)";

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where a run's config comes from; called again on SIGHUP.
struct Source {
  std::optional<std::filesystem::path> file;
  json inline_config;  // when there is no file
  std::string description;
  std::optional<unsigned> workers;

  Config load() const {
    Config c;
    if (file) {
      c = load_config(*file);
    } else {
      try {
        c = parse_config(inline_config, description, std::filesystem::current_path());
      } catch (const ConfigError& e) {
        throw FileConfigError(description, e);
      }
    }
    if (workers) c.workers = *workers;
    return c;
  }
};

// "--use TYPE" or "--use 'TYPE:{json options}'".
json middleware_from_flag(const std::string& flag) {
  const auto brace = flag.find('{');
  std::string type = flag.substr(0, brace);
  if (!type.empty() && type.back() == ':') type.pop_back();
  json m = json::object();
  if (brace != std::string::npos) {
    try {
      m = json::parse(flag.substr(brace));
    } catch (const json::parse_error& e) {
      throw Usage("--use " + flag + ": options are not valid JSON: " + e.what());
    }
    if (!m.is_object()) throw Usage("--use " + flag + ": options must be a JSON object");
  }
  m["type"] = type;
  return m;
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& opts,
                        const std::string& command,
                        const po::positional_options_description& positional = {}) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(opts).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Usage("sluice " + command + ": " + e.what());
  }
  return vm;
}

void start_logging(const po::variables_map& vm) {
  const auto name = vm["log-level"].as<std::string>();
  auto level = parse_log_level(name);
  if (!level)
    throw Usage("--log-level: expected trace, debug, info, warn, error or off, got \"" + name +
                "\"");
  init_logging(*level);
}

po::options_description common_options() {
  po::options_description o;
  o.add_options()("help,h", "show this help")("log-level",
                                              po::value<std::string>()->default_value("info"),
                                              "trace, debug, info, warn, error or off");
  return o;
}

// A channel holds two sockets (and a pipe of two more while it splices), so the soft open-file
// limit of a login shell (1024 on Debian) would stop sluice near 500 channels with "accept
// failed: Too many open files". Like HAProxy (and nginx with worker_rlimit_nofile), sluice takes
// what the hard limit allows, which only an administrator sets.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t was = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("open files: cannot raise the limit of {} to the hard limit {}: {}", was,
                 limit.rlim_max, std::system_category().message(errno));
    return;
  }
  spdlog::info("open files: limit raised from {} to the hard limit, {}", was, limit.rlim_max);
}

int cmd_run(const std::vector<std::string>& args) {
  po::options_description opts("sluice run [options]");
  opts.add(common_options());
  opts.add_options()("config,c", po::value<std::string>(), "config file (JSON)")(
      "listen", po::value<std::string>(), "listen address, e.g. 127.0.0.1:8080 (without -c)")(
      "upstream", po::value<std::string>(),
      "upstream address, e.g. 127.0.0.1:8000 (with --listen)")(
      "use", po::value<std::vector<std::string>>()->composing(),
      "middleware for --listen, in order: TYPE or 'TYPE:{\"option\": value}' (repeatable)")(
      "workers", po::value<unsigned>(), "worker threads (default: the config's, or the cores)");
  auto vm = parse(args, opts, "run");
  if (vm.count("help")) {
    std::cout << opts << "\nWith neither -c nor --listen, runs the built-in default:\n"
              << builtin_default_config() << "\n";
    return kOk;
  }
  start_logging(vm);
  Source source;
  if (vm.count("workers")) {
    source.workers = vm["workers"].as<unsigned>();
    if (*source.workers == 0 || *source.workers > 1024)
      throw Usage("sluice run: --workers: expected 1 to 1024");
  }
  if (vm.count("config")) {
    if (vm.count("listen") || vm.count("upstream") || vm.count("use"))
      throw Usage("sluice run: -c cannot be combined with --listen/--upstream/--use");
    source.file = vm["config"].as<std::string>();
  } else if (vm.count("listen")) {
    json l = {{"name", "cli"},
              {"listen", vm["listen"].as<std::string>()},
              {"middlewares", json::array()}};
    if (vm.count("upstream")) l["upstream"] = vm["upstream"].as<std::string>();
    if (vm.count("use"))
      for (const auto& u : vm["use"].as<std::vector<std::string>>())
        l["middlewares"].push_back(middleware_from_flag(u));
    source.inline_config = {{"listeners", json::array({l})}};
    source.description = "command line";
  } else {
    if (vm.count("upstream") || vm.count("use"))
      throw Usage("sluice run: --upstream and --use need --listen");
    source.inline_config = json::parse(builtin_default_config());
    source.description = "built-in default config";
    spdlog::info(
        "no -c or --listen: running the built-in default (see sluice run --help); "
        "try: nc 127.0.0.1 7000");
  }

  raise_open_file_limit();
  Plugins plugins;
  Extensions extensions;
  std::optional<Engine> engine;
  try {
    Config config = source.load();
    load_plugins(config, plugins);
    extensions.make(config, plugins);
    Runtime rt = build_runtime(std::move(config), plugins, extensions);
    auto reload = [&source, &plugins, &extensions] {
      Config next = source.load();
      load_plugins(next, plugins);
      return build_runtime(std::move(next), plugins, extensions);
    };
    engine.emplace(std::move(rt), extensions, reload);
    engine->bind();
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return kBadInput;
  }
  try {
    return engine->run();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return kFailure;
  }
}

int cmd_check(const std::vector<std::string>& args) {
  po::options_description opts("sluice check -c FILE");
  opts.add(common_options());
  opts.add_options()("config,c", po::value<std::string>(), "config file to validate");
  auto vm = parse(args, opts, "check");
  if (vm.count("help")) {
    std::cout << opts;
    return kOk;
  }
  if (!vm.count("config")) throw Usage("sluice check: -c FILE is required");
  start_logging(vm);
  const std::string file = vm["config"].as<std::string>();
  try {
    Plugins plugins;
    Extensions extensions;
    Config config = load_config(file);
    load_plugins(config, plugins);
    extensions.make(config, plugins);
    Runtime rt = build_runtime(std::move(config), plugins, extensions);
    std::size_t middlewares = 0;
    for (const auto& l : rt.listeners) middlewares += l->factories.size();
    std::cout << file << ": ok (" << rt.listeners.size() << " listener(s), " << middlewares
              << " middleware(s), " << rt.config.extensions.size() << " extension(s))\n";
    for (const auto& l : rt.listeners)
      std::cout << "  listener " << l->config.name << ": " << data_path(*l, rt.config) << "\n";
    return kOk;
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return kBadInput;
  }
}

int cmd_plugins(const std::vector<std::string>& args) {
  po::options_description opts("sluice plugins [options]");
  opts.add(common_options());
  opts.add_options()("json", "print JSON for scripts")("config,c", po::value<std::string>(),
                                                       "also load the plugin_dirs of this config")(
      "plugin-dir", po::value<std::vector<std::string>>()->composing(),
      "also load plugins from this folder or file (repeatable)");
  auto vm = parse(args, opts, "plugins");
  if (vm.count("help")) {
    std::cout << opts;
    return kOk;
  }
  start_logging(vm);
  Plugins plugins;
  try {
    Config config;
    config.source = "command line";
    if (vm.count("config")) config = load_config(vm["config"].as<std::string>());
    if (vm.count("plugin-dir"))
      for (const auto& d : vm["plugin-dir"].as<std::vector<std::string>>())
        config.plugin_dirs.emplace_back(d);
    load_plugins(config, plugins);
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return kBadInput;
  }
  const auto kind = [](Plugins::Kind k) {
    return k == Plugins::Kind::middleware ? "middleware" : "extension";
  };
  if (vm.count("json")) {
    json out = json::array();
    for (const auto* t : plugins.all())
      out.push_back({{"type", t->name},
                     {"kind", kind(t->kind)},
                     {"file", t->file},
                     {"abi", t->abi},
                     {"description", t->description}});
    std::cout << out.dump(2) << "\n";
    return kOk;
  }
  std::size_t width = 4;
  for (const auto* t : plugins.all()) width = std::max(width, t->name.size());
  for (const auto* t : plugins.all()) {
    std::cout << t->name << std::string(width + 2 - t->name.size(), ' ') << kind(t->kind)
              << (t->kind == Plugins::Kind::middleware ? "  " : "   ") << t->description << "\n"
              << std::string(width + 2, ' ') << t->file << " (ABI " << t->abi << ")\n";
  }
  return kOk;
}

int cmd_replay(const std::vector<std::string>& args) {
  po::options_description opts("sluice replay FILE --upstream HOST:PORT [options]");
  opts.add_options()("help,h", "show this help")("file", po::value<std::string>(),
                                                 "a recording written by the record middleware")(
      "upstream", po::value<std::string>(), "the server to replay against, e.g. 127.0.0.1:8000")(
      "channel", po::value<std::uint64_t>(), "the channel id to replay (default: the first)")(
      "timing", po::value<std::string>()->default_value("fast"),
      "fast: no pauses, but each client chunk waits for the answer recorded before it; "
      "original: each client chunk at its recorded time")(
      "timeout", po::value<std::string>()->default_value("5s"),
      "longest wait for the upstream (connect, each answer, each send), e.g. 500ms, 5s");
  po::positional_options_description positional;
  positional.add("file", 1);
  auto vm = parse(args, opts, "replay", positional);
  if (vm.count("help")) {
    std::cout << opts
              << "\nExit status: 0 the answer matches the recording, 1 it differs (or the "
                 "upstream\ncould not be reached), 2 bad usage, unreadable file or unknown "
                 "channel.\n";
    return kOk;
  }
  if (!vm.count("file")) throw Usage("sluice replay: FILE is required");
  if (!vm.count("upstream")) throw Usage("sluice replay: --upstream HOST:PORT is required");
  ReplayOptions options;
  options.file = vm["file"].as<std::string>();
  options.upstream = vm["upstream"].as<std::string>();
  if (vm.count("channel")) options.channel = vm["channel"].as<std::uint64_t>();
  const auto timing = vm["timing"].as<std::string>();
  if (timing == "fast")
    options.timing = ReplayOptions::Timing::fast;
  else if (timing == "original")
    options.timing = ReplayOptions::Timing::original;
  else
    throw Usage("sluice replay: --timing: expected fast or original, got \"" + timing + "\"");
  try {
    options.timeout = Options::parse_duration(json(vm["timeout"].as<std::string>()), "--timeout");
  } catch (const ConfigError& e) {
    throw Usage("sluice replay: " + std::string(e.what()));
  }
  if (options.timeout.count() == 0) throw Usage("sluice replay: --timeout: must be more than 0");
  return replay(options, std::cout, std::cerr);
}

int main_impl(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? kBadInput : kOk;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "sluice " << SLUICE_VERSION << " (plugin ABI " << abi_version << ", "
              << this_abi.compiler << ", Boost " << this_abi.boost << ")\n";
    return kOk;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "run") return cmd_run(args);
    if (command == "check") return cmd_check(args);
    if (command == "plugins") return cmd_plugins(args);
    if (command == "replay") return cmd_replay(args);
    throw Usage("unknown command \"" + command + "\"\n\n" + kUsage);
  } catch (const Usage& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return kBadInput;
  }
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  // Writes to a peer that went away must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  return sluice::main_impl(argc, argv);
}
