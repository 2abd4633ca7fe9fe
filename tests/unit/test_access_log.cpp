#define BOOST_TEST_MODULE access_log
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "access-log/access_log.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Rejects every channel in on_open, before access-log's own on_open.
class Reject final : public sluice::Middleware {
 public:
  void on_open(sluice::Context& ctx) override { ctx.close("rejected by test"); }
};
class RejectFactory final : public sluice::MiddlewareFactory {
 public:
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<Reject>(); }
};

struct Fixture {
  Types types;
  std::filesystem::path path;
  Fixture() {
    sluice::builtin::register_access_log(types);
    types.add_middleware("reject", "rejects", [](sluice::Options&, sluice::Services&) {
      return std::make_unique<RejectFactory>();
    });
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           ("sluice-access-log-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove(path);
  }
  ~Fixture() { std::filesystem::remove(path); }
  json config() const { return json::array({{{"type", "access-log"}, {"path", path.string()}}}); }
  std::vector<std::string> lines() const {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

// ISO-8601 UTC with milliseconds, computed independently of the middleware.
std::string iso(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = ms.count() / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count() % 1000));
  return out;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(access_log, Fixture)

BOOST_AUTO_TEST_CASE(one_line_with_every_field_at_close) {
  Chain c(types, config());
  const auto before = std::chrono::system_clock::now();
  {
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    const auto after = std::chrono::system_clock::now();
    h.feed(Direction::upstream, "hello");
    h.feed(Direction::downstream, "world!!");
    h.feed(Direction::downstream, "+");
    h.advance(1234567us);
    BOOST_TEST(lines().empty());  // nothing before the close
    h.shut("client closed");
    const auto written = lines();
    BOOST_TEST_REQUIRE(written.size() == 1u);
    const auto j = nlohmann::ordered_json::parse(written[0]);
    std::vector<std::string> keys;
    for (const auto& item : j.items()) keys.push_back(item.key());
    const std::vector<std::string> expected_keys = {"time",
                                                    "listener",
                                                    "channel",
                                                    "client",
                                                    "upstream",
                                                    "upstream_connected",
                                                    "bytes_from_client",
                                                    "bytes_to_upstream",
                                                    "bytes_from_upstream",
                                                    "bytes_to_client",
                                                    "duration_ms",
                                                    "reason"};
    BOOST_TEST(keys == expected_keys, boost::test_tools::per_element());

    const auto time = j.at("time").get<std::string>();
    BOOST_TEST(std::regex_match(time, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")),
               time);
    BOOST_TEST(iso(before) <= time);  // same format, so text order is time order
    BOOST_TEST(time <= iso(after));
    BOOST_TEST(j.at("listener") == "test");
    BOOST_TEST(j.at("channel") == 1);
    BOOST_TEST(j.at("client") == "10.0.0.1:40000");
    BOOST_TEST(j.at("upstream") == "192.0.2.7:443");
    BOOST_TEST(j.at("upstream_connected") == true);
    BOOST_TEST(j.at("bytes_from_client") == 5);
    BOOST_TEST(j.at("bytes_to_upstream") == 5);
    BOOST_TEST(j.at("bytes_from_upstream") == 8);
    BOOST_TEST(j.at("bytes_to_client") == 8);
    BOOST_TEST(j.at("duration_ms").get<double>() == 1234.567, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(j.at("reason") == "client closed");
  }
  BOOST_TEST(lines().size() == 1u);  // shut() then destruction: still one line
}

BOOST_AUTO_TEST_CASE(appends_to_an_existing_file) {
  std::ofstream(path) << "earlier line\n";
  Chain c(types, config());
  for (int i = 0; i < 2; ++i) {
    Harness h(c);
    h.shut(i == 0 ? "client closed" : "upstream closed");
  }
  const auto written = lines();
  BOOST_TEST_REQUIRE(written.size() == 3u);
  BOOST_TEST(written[0] == "earlier line");
  BOOST_TEST(json::parse(written[1]).at("reason") == "client closed");
  BOOST_TEST(json::parse(written[2]).at("reason") == "upstream closed");
}

BOOST_AUTO_TEST_CASE(a_channel_rejected_before_its_on_open_is_still_logged) {
  json cfg = config();
  cfg.insert(cfg.begin(), json::object({{"type", "reject"}}));
  Chain c(types, cfg);
  const auto before = std::chrono::system_clock::now();
  { Harness h(c); }
  const auto written = lines();
  BOOST_TEST_REQUIRE(written.size() == 1u);
  const auto j = json::parse(written[0]);
  BOOST_TEST(j.at("reason") == "rejected by test");
  BOOST_TEST(j.at("upstream_connected") == false);
  BOOST_TEST(iso(before) <= j.at("time").get<std::string>());
}

BOOST_AUTO_TEST_CASE(odd_bytes_in_the_reason_still_give_valid_json) {
  Chain c(types, config());
  {
    Harness h(c);
    h.shut("bad \"peer\"\n\xff\xfe");
  }
  const auto written = lines();
  BOOST_TEST_REQUIRE(written.size() == 1u);
  const auto reason = json::parse(written[0]).at("reason").get<std::string>();
  BOOST_TEST(reason.rfind("bad \"peer\"\n", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(lines_stay_whole_under_concurrent_channels) {
  Chain c(types, config());
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&c, t] {
      for (int i = 0; i < 200; ++i) {
        Harness h(c);
        h.feed(Direction::upstream, std::string(static_cast<std::size_t>(t + 1), 'x'));
        h.shut("client closed");
      }
    });
  for (auto& w : workers) w.join();
  const auto written = lines();
  BOOST_TEST_REQUIRE(written.size() == 800u);
  std::uint64_t total = 0;
  for (const auto& line : written) total += json::parse(line).at("bytes_from_client").get<int>();
  BOOST_TEST(total == 200u * (1 + 2 + 3 + 4));
}

BOOST_AUTO_TEST_CASE(stderr_is_the_default) {
  BOOST_CHECK_NO_THROW(Chain(types, json::parse(R"([{"type": "access-log"}])")));
  BOOST_CHECK_NO_THROW(Chain(types, json::parse(R"([{"type": "access-log", "path": "-"}])")));
}

BOOST_AUTO_TEST_CASE(unopenable_path_is_a_config_error_naming_it) {
  const std::string bad = "/nonexistent-sluice-dir/access.log";
  try {
    Chain(types, json::array({{{"type", "access-log"}, {"path", bad}}}));
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/path");
    const std::string what = e.what();
    BOOST_TEST(what.find(bad) != std::string::npos, what);
    BOOST_TEST(what.find("No such file or directory") != std::string::npos, what);
  }
  try {
    Chain(types, json::parse(R"([{"type": "access-log", "path": 7}])"));
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/path");
  }
}

BOOST_AUTO_TEST_SUITE_END()
