// The plugin loader (engine/plugins.hpp) against the test plugins of tests/plugins: every
// broken plugin is refused with a message naming the file and the problem, and leaves nothing
// registered; the good ones load, list their types and work through the SDK's harness.
#define BOOST_TEST_MODULE plugin_loading
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plugins.hpp"
#include "sluice/testing.hpp"

#ifndef SLUICE_BROKEN_PLUGIN_DIR
#error "SLUICE_BROKEN_PLUGIN_DIR must be defined"
#endif

namespace fs = std::filesystem;
using nlohmann::json;
using sluice::Direction;
using sluice::PluginError;
using sluice::Plugins;

namespace {

const fs::path broken_dir = SLUICE_BROKEN_PLUGIN_DIR;
const fs::path good_dir = SLUICE_TEST_PLUGIN_DIR;
const fs::path builtin_dir = SLUICE_BUILTIN_PLUGIN_DIR;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Loads one broken plugin's folder and returns the loader's message.
std::string refusal(Plugins& plugins, const std::string& name) {
  try {
    plugins.load(broken_dir / name);
  } catch (const PluginError& e) {
    BOOST_TEST_MESSAGE(name << ": " << e.what());
    return e.what();
  }
  BOOST_FAIL(name << ": loaded without an error");
  return {};
}

std::string file_of(const std::string& name) {
  return (broken_dir / name / (name + ".so")).string();
}

bool registered(const Plugins& plugins, const std::string& type) {
  return plugins.find(type, Plugins::Kind::middleware) ||
         plugins.find(type, Plugins::Kind::extension);
}

// The types of `plugins` as a testing::Types, so Chain and Harness can run loaded plugins.
sluice::testing::Types as_types(const Plugins& plugins) {
  sluice::testing::Types types;
  for (const auto* t : plugins.all()) {
    if (t->kind == Plugins::Kind::middleware)
      types.add_middleware(t->name, t->description, t->make_middleware);
    else
      types.add_extension(t->name, t->description, t->make_extension);
  }
  return types;
}

// An extension of another type than "tally", for tally-count's type check.
class Other final : public sluice::Extension {
 public:
  std::string_view type() const override { return "other"; }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(broken)

BOOST_AUTO_TEST_CASE(wrong_abi_names_both_versions) {
  Plugins plugins;
  const auto msg = refusal(plugins, "wrong-abi");
  BOOST_TEST(contains(msg, file_of("wrong-abi")));
  BOOST_TEST(contains(msg, "built for ABI version 999"));
  BOOST_TEST(contains(msg, "this sluice has ABI version " + std::to_string(sluice::abi_version)));
  BOOST_TEST(!registered(plugins, "wrong-abi"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(no_entry_is_not_a_sluice_plugin) {
  Plugins plugins;
  const auto msg = refusal(plugins, "no-entry");
  BOOST_TEST(contains(msg, file_of("no-entry")));
  BOOST_TEST(contains(msg, "missing entry point sluice_plugin_abi"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(no_register_names_the_missing_symbol) {
  Plugins plugins;
  const auto msg = refusal(plugins, "no-register");
  BOOST_TEST(contains(msg, file_of("no-register")));
  BOOST_TEST(contains(msg, "missing entry point sluice_plugin_register"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(throwing_register_registers_nothing) {
  Plugins plugins;
  const auto msg = refusal(plugins, "throwing-register");
  BOOST_TEST(contains(msg, file_of("throwing-register")));
  BOOST_TEST(contains(msg, "registration failed: boom"));
  BOOST_TEST(!registered(plugins, "throwing-register"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(a_throw_of_a_non_exception_is_refused_too) {
  Plugins plugins;
  const auto msg = refusal(plugins, "throwing-int");
  BOOST_TEST(contains(msg, file_of("throwing-int")));
  BOOST_TEST(contains(msg, "registration failed: it threw something that is not a std::exception"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(duplicate_type_names_the_builtin_file) {
  Plugins plugins;
  plugins.load(builtin_dir);
  const auto* hexdump = plugins.find("hexdump", Plugins::Kind::middleware);
  BOOST_REQUIRE(hexdump);
  const std::string builtin_file = hexdump->file;
  BOOST_TEST(contains(builtin_file, (builtin_dir / "hexdump.so").string()));
  const auto before = plugins.all().size();

  const auto msg = refusal(plugins, "duplicate-type");
  BOOST_TEST(contains(msg, file_of("duplicate-type")));
  BOOST_TEST(contains(msg, "registers type \"hexdump\", already registered by " + builtin_file));
  BOOST_TEST(!registered(plugins, "duplicate-type"));  // registered before the clash
  BOOST_TEST(plugins.all().size() == before);
  BOOST_TEST(plugins.find("hexdump", Plugins::Kind::middleware)->file == builtin_file);
}

BOOST_AUTO_TEST_CASE(twice_within_one_plugin) {
  Plugins plugins;
  const auto msg = refusal(plugins, "twice");
  BOOST_TEST(contains(msg, file_of("twice")));
  BOOST_TEST(contains(msg, "registers type \"twice\" twice"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(not_a_library_cannot_load) {
  Plugins plugins;
  const auto msg = refusal(plugins, "not-a-library");
  BOOST_TEST(contains(msg, file_of("not-a-library")));
  BOOST_TEST(contains(msg, "cannot load as a shared library"));
  BOOST_TEST(plugins.all().empty());
}

BOOST_AUTO_TEST_CASE(a_missing_folder_is_named) {
  Plugins plugins;
  const auto msg = refusal(plugins, "no-such-folder");
  BOOST_TEST(contains(msg, (broken_dir / "no-such-folder").string()));
  BOOST_TEST(contains(msg, "no such plugin file or folder"));
}

BOOST_AUTO_TEST_CASE(a_failure_leaves_earlier_plugins_usable) {
  Plugins plugins;
  plugins.load(good_dir);
  const auto before = plugins.all().size();
  for (const char* name : {"wrong-abi", "no-entry", "no-register", "throwing-register",
                           "throwing-int", "twice", "not-a-library"})
    refusal(plugins, name);
  BOOST_TEST(plugins.all().size() == before);
  BOOST_TEST(plugins.find("faulty", Plugins::Kind::middleware));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(good)

BOOST_AUTO_TEST_CASE(lists_every_type_with_its_description) {
  Plugins plugins;
  plugins.load(good_dir);
  const auto* faulty = plugins.find("faulty", Plugins::Kind::middleware);
  const auto* tally = plugins.find("tally", Plugins::Kind::extension);
  const auto* count = plugins.find("tally-count", Plugins::Kind::middleware);
  BOOST_REQUIRE(faulty);
  BOOST_REQUIRE(tally);
  BOOST_REQUIRE(count);
  BOOST_TEST(plugins.all().size() == 3u);
  BOOST_TEST(faulty->file == (good_dir / "faulty.so").string());
  BOOST_TEST(tally->file == (good_dir / "tally.so").string());
  BOOST_TEST(count->file == (good_dir / "tally.so").string());
  BOOST_TEST(contains(faulty->description, "throws from on_data"));
  BOOST_TEST(contains(tally->description, "counts channels and bytes"));
  BOOST_TEST(contains(count->description, "tally extension"));
  BOOST_TEST(faulty->abi == sluice::abi_version);
  BOOST_TEST(!plugins.find("tally", Plugins::Kind::middleware));  // kinds are kept apart
  BOOST_TEST(plugins.names(Plugins::Kind::middleware) == "faulty, tally-count");

  // Loading the same folder again is a no-op, not a duplicate-type error.
  plugins.load(good_dir);
  BOOST_TEST(plugins.all().size() == 3u);
}

BOOST_AUTO_TEST_CASE(faulty_throws_on_the_nth_chunk_and_closes_its_channel) {
  Plugins plugins;
  plugins.load(good_dir);
  auto types = as_types(plugins);
  sluice::testing::Chain chain(types, json::parse(R"([{"type": "faulty", "throw_on_chunk": 3}])"));
  sluice::testing::Harness h(chain);
  h.feed(Direction::upstream, "one");
  h.feed(Direction::downstream, "two");
  BOOST_TEST(h.take(Direction::upstream) == "one");
  BOOST_TEST(h.take(Direction::downstream) == "two");
  BOOST_TEST(!h.closed());
  h.feed(Direction::upstream, "three");
  BOOST_TEST(h.closed());
  BOOST_TEST(h.close_reason() == "middleware faulty threw in on_data: faulty: chunk 3");
  BOOST_TEST(h.take(Direction::upstream) == "");

  // Another channel of the same chain starts counting afresh.
  sluice::testing::Harness other(chain);
  other.feed(Direction::upstream, "one");
  BOOST_TEST(!other.closed());
}

BOOST_AUTO_TEST_CASE(faulty_option_errors_name_their_path) {
  Plugins plugins;
  plugins.load(good_dir);
  auto types = as_types(plugins);
  const auto error_of = [&](const char* chain) -> std::string {
    try {
      sluice::testing::Chain c(types, json::parse(chain));
    } catch (const sluice::ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  BOOST_TEST(error_of(R"([{"type": "faulty", "throw_on_chunk": 0}])") ==
             "/middlewares/0/throw_on_chunk: expected an integer of at least 1, got 0");
  BOOST_TEST(error_of(R"([{"type": "faulty", "throw_on_chunk": -2}])") ==
             "/middlewares/0/throw_on_chunk: expected an integer of at least 1, got -2");
  BOOST_TEST(error_of(R"([{"type": "faulty"}, {"type": "faulty", "throw_in_factory": true}])") ==
             "/middlewares/1/throw_in_factory: factory refused the options");
  BOOST_TEST(error_of(R"([{"type": "faulty", "throw_in_factory": false}])") == "no error");
}

BOOST_AUTO_TEST_CASE(tally_counts_channels_through_its_extension) {
  Plugins plugins;
  plugins.load(good_dir);
  auto types = as_types(plugins);
  {
    sluice::testing::Chain chain(types,
                                 json::parse(R"([{"type": "tally-count", "extension": "t"}])"),
                                 json::parse(R"({"t": {"type": "tally"}})"));
    BOOST_TEST(chain.logs == std::vector<std::string>{"tally extension started"});
    {
      sluice::testing::Harness h(chain);
      h.feed(Direction::upstream, "12345");
      h.feed(Direction::downstream, "123");
      h.shut("done");
      BOOST_TEST(h.logs == std::vector<std::string>{"tally-count: tally: 1 channels, 8 bytes"});
    }
    sluice::testing::Harness h2(chain);
    h2.feed(Direction::upstream, "12");
    h2.shut("done");
    BOOST_TEST(h2.logs == std::vector<std::string>{"tally-count: tally: 2 channels, 10 bytes"});
  }
}

BOOST_AUTO_TEST_CASE(tally_count_names_a_wrong_extension) {
  Plugins plugins;
  plugins.load(good_dir);
  auto types = as_types(plugins);
  types.add_extension(
      "other", "a test extension of another type",
      [](sluice::Options&, sluice::Services&) -> std::unique_ptr<sluice::Extension> {
        return std::make_unique<Other>();
      });
  const json extensions = json::parse(R"({"t": {"type": "tally"}, "o": {"type": "other"}})");
  const auto error_of = [&](const char* chain) -> std::string {
    try {
      sluice::testing::Chain c(types, json::parse(chain), extensions);
    } catch (const sluice::ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  BOOST_TEST(error_of(R"([{"type": "tally-count", "extension": "nope"}])") ==
             "/middlewares/0/extension: no extension named \"nope\" in /extensions");
  BOOST_TEST(error_of(R"([{"type": "tally-count", "extension": "o"}])") ==
             "/middlewares/0/extension: extension \"o\" is of type \"other\", expected \"tally\"");
  BOOST_TEST(error_of(R"([{"type": "tally-count"}])") ==
             "/middlewares/0/extension: missing (required)");
  BOOST_TEST(error_of(R"([{"type": "tally-count", "extension": "t"}])") == "no error");
}

BOOST_AUTO_TEST_SUITE_END()
