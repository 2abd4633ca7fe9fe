// The outside plugin author's path, end to end: install sluice into a temporary prefix, copy
// plugins/example somewhere with no sluice source around, build it with find_package(sluice)
// alone, and run traffic through it with the installed binary.
#define BOOST_TEST_MODULE outside_plugin
#include <boost/test/unit_test.hpp>
#include <csignal>

#include "sluice/abi.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void must_run(const std::vector<std::string>& argv) {
  auto r = it::run_command(argv, std::chrono::minutes(5));
  BOOST_TEST_INFO("command: " << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << "\n"
                              << r.output);
  BOOST_REQUIRE_EQUAL(r.exit_code, 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(example_plugin_builds_from_the_installed_sdk_and_carries_traffic) {
  it::TempDir tmp;
  const fs::path prefix = tmp.file("prefix");
  const fs::path example = tmp.file("example");
  must_run({SLUICE_CMAKE, "--install", SLUICE_BUILD_DIR, "--prefix", prefix.string()});
  BOOST_REQUIRE(fs::exists(prefix / "lib/cmake/sluice/sluiceConfig.cmake"));
  BOOST_REQUIRE(fs::exists(prefix / "include/sluice/plugin.hpp"));
  BOOST_REQUIRE(fs::exists(prefix / "lib/sluice/hexdump.so"));

  fs::copy(fs::path(SLUICE_SOURCE_DIR) / "plugins/example", example, fs::copy_options::recursive);
  fs::remove_all(example / "build");
  must_run({SLUICE_CMAKE, "-S", example.string(), "-B", (example / "build").string(), "-G", "Ninja",
            "-DCMAKE_PREFIX_PATH=" + prefix.string()});
  must_run({SLUICE_CMAKE, "--build", (example / "build").string()});
  BOOST_REQUIRE(fs::exists(example / "build/line_tag.so"));

  const std::string sluice = (prefix / "bin/sluice").string();
  auto listed =
      it::run_command({sluice, "plugins", "--json", "--plugin-dir", (example / "build").string()});
  BOOST_REQUIRE_EQUAL(listed.exit_code, 0);
  bool found = false;
  for (const auto& t : json::parse(listed.output))
    if (t["type"] == "line-tag") {
      found = true;
      BOOST_TEST(t["file"].get<std::string>() == (example / "build/line_tag.so").string());
      BOOST_TEST(t["abi"].get<std::uint32_t>() == sluice::abi_version);
    }
  BOOST_TEST(found);

  auto echo = it::echo_server();
  const auto port = it::free_port();
  const auto config = it::write_json(
      tmp.file("line-tag.json"),
      {{"workers", 1},
       {"plugin_dirs", {(example / "build").string()}},
       {"extensions", {{"stats", {{"type", "line-stats"}}}}},
       {"listeners",
        {{{"listen", it::loopback(port)},
          {"upstream", echo->address()},
          {"middlewares", {{{"type", "line-tag"}, {"tag", "[t] "}, {"stats", "stats"}}}}}}}});
  it::Process proxy({sluice, "run", "-c", config.string()}, tmp.file("sluice.log"));
  BOOST_REQUIRE_MESSAGE(proxy.wait_for_log("sluice ready:", it::kWait), proxy.log());

  auto client = it::Socket::connect(port);
  // Lines split across reads: the middleware must carry the partial line between chunks.
  for (std::string_view piece : {"one\ntw", "o\n", "thr"}) {
    BOOST_REQUIRE(client.send_all(piece));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  client.shutdown_write();
  std::string got;
  const it::End end = client.recv_to_end(got);
  BOOST_TEST(it::to_string(end) == it::to_string(it::End::eof));
  BOOST_TEST(got == "[t] one\n[t] two\n[t] thr");

  proxy.send_signal(SIGTERM);
  BOOST_TEST(proxy.wait_exit(it::kWait).value_or(-1) == 0);
  BOOST_CHECK_MESSAGE(proxy.log().find("line-stats: 3 lines in 1 channels") != std::string::npos,
                      proxy.log());
}
