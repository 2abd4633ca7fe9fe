// Unit tests of the config schema, addresses and option parsing: every error names its JSON path.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

#include "address.hpp"
#include "config.hpp"

using nlohmann::json;
using sluice::ConfigError;

namespace {

// The JSON path of the ConfigError that parsing `text` throws, or "no error".
std::string error_path(const std::string& text) {
  try {
    sluice::parse_config(json::parse(text), "t.json", "/base");
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "no error";
}

std::string error_message(const std::string& text) {
  try {
    sluice::parse_config(json::parse(text), "t.json", "/base");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

const std::string kListener = R"({"listen": "127.0.0.1:7000", "upstream": "127.0.0.1:7001"})";

}  // namespace

BOOST_AUTO_TEST_CASE(host_port_forms) {
  auto v4 = sluice::parse_host_port("127.0.0.1:80");
  BOOST_TEST(v4.host == "127.0.0.1");
  BOOST_TEST(v4.port == 80);
  BOOST_TEST(v4.endpoint.has_value());
  auto v6 = sluice::parse_host_port("[::1]:443");
  BOOST_TEST(v6.host == "::1");
  BOOST_TEST(v6.str() == "[::1]:443");
  BOOST_TEST(v6.endpoint->address().is_v6());
  auto name = sluice::parse_host_port("db.example-1.local:5432");
  BOOST_TEST(!name.endpoint.has_value());
  BOOST_TEST(name.str() == "db.example-1.local:5432");
}

BOOST_AUTO_TEST_CASE(host_port_errors) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:8x",
                          "::1:80", "[::1:80", "[::1]80", "bad host:80", "a/b:1"})
    BOOST_CHECK_THROW(sluice::parse_host_port(bad), std::invalid_argument);
  BOOST_CHECK_THROW(sluice::parse_ip_port("localhost:80"), std::invalid_argument);
  BOOST_TEST(sluice::to_string(sluice::parse_ip_port("[::1]:9")) == "[::1]:9");
}

BOOST_AUTO_TEST_CASE(defaults) {
  auto c =
      sluice::parse_config(json::parse(R"({"listeners": [)" + kListener + "]}"), "t.json", "/base");
  BOOST_TEST(c.workers >= 1u);
  BOOST_TEST(c.drain_timeout.count() == 30000);
  BOOST_TEST(c.busy_poll.count() == 0);
  BOOST_REQUIRE(c.listeners.size() == 1u);
  const auto& l = c.listeners[0];
  BOOST_TEST(l.name == "127.0.0.1:7000");
  BOOST_TEST(l.connect_timeout.count() == 5000);
  BOOST_TEST(l.idle_timeout.count() == 15 * 60 * 1000);
  BOOST_TEST(l.high_watermark == 1024u * 1024u);
  BOOST_TEST(l.low_watermark == 256u * 1024u);
  BOOST_TEST(l.nodelay);
  BOOST_TEST(l.middlewares.empty());
}

BOOST_AUTO_TEST_CASE(values_with_units_and_relative_plugin_dirs) {
  auto c = sluice::parse_config(json::parse(R"({
    "workers": 3, "drain_timeout": "1.5s", "plugin_dirs": ["p", "/abs"], "busy_poll_us": 50,
    "listeners": [{"name": "a", "listen": "[::1]:0", "upstream": "h:1",
                   "connect_timeout": "250ms", "idle_timeout": 0,
                   "high_watermark": "64KiB", "low_watermark": 1024, "nodelay": false,
                   "middlewares": [{"type": "x", "anything": [1]}]}]})"),
                                "t.json", "/base");
  BOOST_TEST(c.workers == 3u);
  BOOST_TEST(c.drain_timeout.count() == 1500);
  BOOST_TEST(c.busy_poll.count() == 50);
  BOOST_TEST(c.plugin_dirs[0] == std::filesystem::path("/base/p"));
  BOOST_TEST(c.plugin_dirs[1] == std::filesystem::path("/abs"));
  const auto& l = c.listeners[0];
  BOOST_TEST(l.connect_timeout.count() == 250);
  BOOST_TEST(l.idle_timeout.count() == 0);
  BOOST_TEST(l.high_watermark == 65536u);
  BOOST_TEST(l.low_watermark == 1024u);
  BOOST_TEST(!l.nodelay);
  BOOST_TEST(l.middlewares.size() == 1u);
}

BOOST_AUTO_TEST_CASE(errors_name_their_json_path) {
  BOOST_TEST(error_path(R"({"listeners": [)" + kListener + R"(], "bogus": 1})") == "/bogus");
  BOOST_TEST(error_path(R"({"workers": "two", "listeners": [)" + kListener + "]}") == "/workers");
  BOOST_TEST(error_path(R"({"workers": 0, "listeners": [)" + kListener + "]}") == "/workers");
  BOOST_TEST(error_path(R"({"busy_poll_us": 10001, "listeners": [)" + kListener + "]}") ==
             "/busy_poll_us");
  BOOST_TEST(error_path(R"({"busy_poll_us": -1, "listeners": [)" + kListener + "]}") ==
             "/busy_poll_us");
  BOOST_TEST(error_path(R"({"busy_poll_us": "50us", "listeners": [)" + kListener + "]}") ==
             "/busy_poll_us");
  BOOST_TEST(error_path(R"({})") == "/listeners");
  BOOST_TEST(error_path(R"({"listeners": []})") == "/listeners");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "x", "upstream": "127.0.0.1:1"}]})") ==
             "/listeners/0/listen");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "upstream": "nope"}]})") ==
             "/listeners/0/upstream");
  BOOST_TEST(error_path(R"({"listeners": [{"upstream": "127.0.0.1:1"}]})") ==
             "/listeners/0/listen");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "bogus": true}]})") ==
             "/listeners/0/bogus");
  BOOST_TEST(
      error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "idle_timeout": "5 parsecs"}]})") ==
      "/listeners/0/idle_timeout");
  // Under a millisecond but not 0: it would round to 0, which is "off" for idle_timeout.
  BOOST_TEST(
      error_message(R"({"listeners": [{"listen": "127.0.0.1:1", "idle_timeout": "0.4ms"}]})") ==
      "/listeners/0/idle_timeout: expected 0 or at least 1ms (durations count whole milliseconds)");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "idle_timeout": 0.0001}]})") ==
             "/listeners/0/idle_timeout");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "idle_timeout": "0.6ms"}]})") ==
             "no error");  // rounds to 1 ms
  BOOST_TEST(
      error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "high_watermark": "lots"}]})") ==
      "/listeners/0/high_watermark");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "low_watermark": "2MiB"}]})") ==
             "/listeners/0/low_watermark");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "middlewares": [3]}]})") ==
             "/listeners/0/middlewares/0");
  BOOST_TEST(error_path(R"({"listeners": [{"listen": "127.0.0.1:1", "middlewares": {}}]})") ==
             "/listeners/0/middlewares");
  BOOST_TEST(error_path(R"({"extensions": {"m": {}}, "listeners": [)" + kListener + "]}") ==
             "/extensions/m/type");
  BOOST_TEST(error_path(R"({"plugin_dirs": "x", "listeners": [)" + kListener + "]}") ==
             "/plugin_dirs");
  BOOST_TEST(error_path(R"({"plugin_dirs": ["ok", 1], "listeners": [)" + kListener + "]}") ==
             "/plugin_dirs/1");
}

BOOST_AUTO_TEST_CASE(duplicates) {
  BOOST_TEST(error_path(R"({"listeners": [{"name": "a", "listen": "127.0.0.1:1", "upstream": "h:1"},
                                          {"name": "a", "listen": "127.0.0.1:2", "upstream": "h:1"}]})") ==
             "/listeners/1/name");
  BOOST_TEST(
      error_message(R"({"listeners": [{"name": "a", "listen": "127.0.0.1:1", "upstream": "h:1"},
                                             {"name": "a", "listen": "127.0.0.1:2", "upstream": "h:1"}]})")
          .find("duplicate listener name \"a\"") != std::string::npos);
  BOOST_TEST(error_path(R"({"listeners": [{"name": "a", "listen": "127.0.0.1:1", "upstream": "h:1"},
                                          {"name": "b", "listen": "127.0.0.1:1", "upstream": "h:1"}]})") ==
             "/listeners/1/listen");
}

BOOST_AUTO_TEST_CASE(file_errors_name_the_file_and_position) {
  const auto dir = std::filesystem::temp_directory_path() / "sluice-test-config";
  std::filesystem::create_directories(dir);
  const auto file = dir / "broken.json";
  std::ofstream(file) << "{\n  \"listeners\": [\n    { \"listen\": \"127.0.0.1:1\" ,, }\n  ]\n}\n";
  try {
    sluice::load_config(file);
    BOOST_FAIL("no error for invalid JSON");
  } catch (const sluice::FileConfigError& e) {
    const std::string what = e.what();
    BOOST_TEST(what.find(file.string()) == 0u);
    BOOST_TEST(what.find("line 3") != std::string::npos);
    BOOST_TEST(what.find("column") != std::string::npos);
  }
  try {
    sluice::load_config(dir / "missing.json");
    BOOST_FAIL("no error for a missing file");
  } catch (const sluice::FileConfigError& e) {
    BOOST_TEST(std::string(e.what()).find("cannot read") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(builtin_default_is_valid) {
  auto c = sluice::parse_config(json::parse(sluice::builtin_default_config()), "default", "/");
  BOOST_REQUIRE(c.listeners.size() == 2u);
  BOOST_TEST(sluice::to_string(c.listeners[0].listen) == "127.0.0.1:7000");
  BOOST_TEST(c.listeners[0].upstream->str() == "127.0.0.1:7001");
  BOOST_TEST(sluice::to_string(c.listeners[1].listen) == "127.0.0.1:7001");
}
