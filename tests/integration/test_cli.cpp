// The command line: --version, plugins --json, run from flags, run with the built-in default,
// and the listener's idle_timeout.
#define BOOST_TEST_MODULE cli
#include <boost/test/unit_test.hpp>

#include <set>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

BOOST_AUTO_TEST_CASE(version) {
  const auto r = run_sluice({"--version"});
  BOOST_TEST(r.exit_code == 0, r.output);
  BOOST_TEST(r.output.find("sluice") != std::string::npos, r.output);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{},
                                               {"no-such-command"},
                                               {"run", "--no-such-flag"},
                                               {"run", "--use", "hexdump"},
                                               {"check"},
                                               {"replay"}}) {
    const auto r = run_sluice(args);
    BOOST_TEST(r.exit_code == 2, r.output);
    BOOST_TEST(r.output.find("sluice") != std::string::npos, r.output);
  }
}

BOOST_AUTO_TEST_CASE(plugins_json_lists_the_builtins) {
  const auto r = run_sluice({"plugins", "--json"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const json list = json::parse(r.output, nullptr, false);
  BOOST_REQUIRE_MESSAGE(list.is_array(), r.output);
  std::set<std::string> found;
  for (const auto& t : list) {
    BOOST_REQUIRE(t.is_object());
    const std::string type = t.value("type", "");
    const std::string file = t.value("file", "");
    BOOST_TEST_CONTEXT("type " << type) {
      BOOST_TEST(!type.empty());
      BOOST_TEST(file.size() > 3);
      BOOST_TEST(file.ends_with(".so"), file);
      BOOST_TEST(std::filesystem::is_regular_file(file), file);
    }
    if (t.value("kind", "") == "middleware") found.insert(type);
  }
  for (const char* builtin : {"hexdump", "replace", "access-log", "echo"})
    BOOST_TEST(found.count(builtin) == 1u, builtin << " missing from:\n" << r.output);
}

BOOST_AUTO_TEST_CASE(run_from_flags_with_hexdump) {
  auto echo = echo_server();
  const auto port = free_port();
  Sluice sluice({"run", "--listen", loopback(port), "--upstream", echo->address(), "--use",
                 "hexdump", "--workers", "2"});
  sluice.expect_ready();
  {
    Socket client = Socket::connect(port);
    BOOST_TEST(roundtrip(client, "hello, hexdump") == "hello, hexdump");
    client.shutdown_write();
    std::string rest;
    BOOST_TEST(std::string(to_string(client.recv_to_end(rest))) == "EOF");
  }
  BOOST_TEST(sluice.wait_for_log("hexdump: upstream offset 0 length 14"), sluice.log());
  BOOST_TEST(sluice.wait_for_log("hexdump: downstream offset 0 length 14"), sluice.log());
  BOOST_TEST(sluice.log().find("|hello, hexdump|") != std::string::npos, sluice.log());
  BOOST_TEST(sluice.stop() == 0, sluice.log());
}

BOOST_AUTO_TEST_CASE(run_from_flags_with_options) {
  auto echo = echo_server();
  const auto port = free_port();
  Sluice sluice({"run", "--listen", loopback(port), "--upstream", echo->address(), "--use",
                 R"(replace:{"from":"a","to":"b"})"});
  sluice.expect_ready();
  {
    Socket client = Socket::connect(port);
    BOOST_TEST(roundtrip(client, "banana") == "bbnbnb");
  }
  BOOST_TEST(sluice.stop() == 0, sluice.log());
}

BOOST_AUTO_TEST_CASE(run_builtin_default) {
  if (!port_bindable(7000) || !port_bindable(7001) || port_listening(7000) ||
      port_listening(7001)) {
    BOOST_TEST_MESSAGE("skipped: 127.0.0.1:7000 or :7001 is busy");
    return;
  }
  Sluice sluice({"run"});
  if (!sluice.wait_for_log("sluice ready:") && sluice.log().find("in use") != std::string::npos) {
    BOOST_TEST_MESSAGE("skipped: 127.0.0.1:7000 or :7001 was taken meanwhile:\n" << sluice.log());
    return;
  }
  sluice.expect_ready(0ms);
  {
    Socket client = Socket::connect(7000);
    BOOST_TEST(roundtrip(client, "ping\n") == "ping\n");
    BOOST_TEST(roundtrip(client, std::string(100000, 'z')) == std::string(100000, 'z'));
    client.shutdown_write();
    std::string rest;
    BOOST_TEST(std::string(to_string(client.recv_to_end(rest))) == "EOF");
  }
  BOOST_TEST(sluice.log().find("7000") != std::string::npos);
  BOOST_TEST(sluice.stop() == 0, sluice.log());
}

BOOST_AUTO_TEST_CASE(idle_timeout_closes_an_idle_channel) {
  TempDir dir;
  auto echo = echo_server();
  const auto port = free_port();
  auto sluice =
      Sluice::run_config(write_json(dir.file("proxy.json"), {{"workers", 2},
                                                             {"listeners",
                                                              {{{"name", "idle"},
                                                                {"listen", loopback(port)},
                                                                {"upstream", echo->address()},
                                                                {"idle_timeout", "1s"}}}}}));
  Socket client = Socket::connect(port);
  client.set_timeout(10s);
  BOOST_TEST(roundtrip(client, "wake") == "wake");
  const auto idle_from = Clock::now();
  std::string rest;
  const End end = client.recv_to_end(rest);
  const double after = std::chrono::duration<double>(Clock::now() - idle_from).count();
  BOOST_TEST(std::string(to_string(end)) == "EOF");
  BOOST_TEST(after >= 0.9, "closed after " << after << " s");
  BOOST_TEST(after < 3.0, "closed after " << after << " s");
  BOOST_TEST(sluice->wait_for_log("idle timeout"), sluice->log());
  client.close();
  BOOST_TEST(sluice->stop() == 0, sluice->log());
}
