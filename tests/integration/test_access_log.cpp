// access-log through the real engine: one line per channel with the right fields and counts.
#define BOOST_TEST_MODULE access_log
#include <boost/test/unit_test.hpp>

#include <cctype>
#include <ctime>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// Waits for the access log to hold `n` lines and returns the last one, parsed.
json wait_line(const std::filesystem::path& file, std::size_t n) {
  if (!wait_until([&] { return read_lines(file).size() >= n; }, kWait))
    throw std::runtime_error("access log has " + std::to_string(read_lines(file).size()) +
                             " line(s), expected " + std::to_string(n) + ":\n" + read_file(file));
  const auto lines = read_lines(file);
  BOOST_TEST(lines.size() == n);
  BOOST_TEST_MESSAGE("access log: " << lines[n - 1]);
  return json::parse(lines[n - 1]);
}

// "2026-11-23T15:35:14.123Z": '9' stands for a digit. (No std::regex: GCC 12 warns inside it
// under ASan, and warnings are errors.)
bool matches_iso8601_ms(const std::string& t) {
  const std::string shape = "9999-99-99T99:99:99.999Z";
  if (t.size() != shape.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (shape[i] == '9' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != shape[i])
      return false;
  return true;
}

// "2026-11-23T15:35:14.123Z", within a minute of now.
void check_time(const json& line) {
  BOOST_REQUIRE(line.contains("time") && line["time"].is_string());
  const std::string t = line["time"];
  BOOST_TEST(matches_iso8601_ms(t), t);
  std::tm tm{};
  BOOST_REQUIRE(::strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
  const std::time_t when = ::timegm(&tm);
  const std::time_t now = std::time(nullptr);
  BOOST_TEST(std::abs(static_cast<long>(now - when)) < 60, "time " << t << " is not about now");
}

struct Fixture {
  Fixture() : echo(echo_server()), port(free_port()) {
    const json chain = {{{"type", "access-log"}, {"path", log_file.string()}}};
    const auto config = write_json(dir.file("proxy.json"), {{"workers", 2},
                                                            {"listeners",
                                                             {{{"name", "logged"},
                                                               {"listen", loopback(port)},
                                                               {"upstream", echo->address()},
                                                               {"middlewares", chain}},
                                                              {{"name", "logged-scripted"},
                                                               {"listen", loopback(scripted_port)},
                                                               {"upstream", scripted.address()},
                                                               {"middlewares", chain}}}}});
    sluice = Sluice::run_config(config);
  }
  ~Fixture() {
    if (sluice) BOOST_CHECK_MESSAGE(sluice->stop() == 0, "sluice exit; log:\n" << sluice->log());
  }
  TempDir dir;
  std::filesystem::path log_file = dir.file("access.log");
  std::unique_ptr<Server> echo;
  // Sends 100 bytes, then closes first (without reading).
  Server scripted{[](Socket& s) { s.send_all(std::string(100, 'u')); }};
  std::uint16_t port;
  std::uint16_t scripted_port = free_port();
  std::unique_ptr<Sluice> sluice;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(access_log, Fixture)

BOOST_AUTO_TEST_CASE(client_closes_first) {
  std::string client_address;
  {
    Socket client = Socket::connect(port);
    client_address = client.local_address();
    BOOST_TEST(roundtrip(client, std::string(1000, 'a')) == std::string(1000, 'a'));
    BOOST_TEST(roundtrip(client, std::string(234, 'b')) == std::string(234, 'b'));
    client.shutdown_write();
    std::string rest;
    BOOST_TEST(std::string(to_string(client.recv_to_end(rest))) == "EOF");
    BOOST_TEST(rest.empty());
  }
  const json line = wait_line(log_file, 1);
  check_time(line);
  BOOST_TEST(line.value("listener", "") == "logged");
  BOOST_TEST(line.value("client", "") == client_address);
  BOOST_TEST(line.value("upstream", "") == echo->address());
  BOOST_TEST(line.value("upstream_connected", false));
  BOOST_TEST(line.contains("channel"));
  BOOST_TEST(line["channel"].is_number_unsigned());
  BOOST_TEST(line.value("bytes_from_client", -1) == 1234);
  BOOST_TEST(line.value("bytes_to_upstream", -1) == 1234);
  BOOST_TEST(line.value("bytes_from_upstream", -1) == 1234);
  BOOST_TEST(line.value("bytes_to_client", -1) == 1234);
  BOOST_TEST(line.value("reason", "") == "client closed");
  BOOST_REQUIRE(line.contains("duration_ms") && line["duration_ms"].is_number());
  BOOST_TEST(line["duration_ms"].get<double>() >= 0.0);
  BOOST_TEST(line["duration_ms"].get<double>() < 60000.0);
}

BOOST_AUTO_TEST_CASE(upstream_closes_first) {
  std::string client_address;
  {
    Socket client = Socket::connect(scripted_port);
    client_address = client.local_address();
    std::string got;
    BOOST_TEST(std::string(to_string(client.recv_to_end(got))) == "EOF");
    BOOST_TEST(got == std::string(100, 'u'));
  }  // closes after the upstream did
  const json line = wait_line(log_file, 1);
  check_time(line);
  BOOST_TEST(line.value("listener", "") == "logged-scripted");
  BOOST_TEST(line.value("client", "") == client_address);
  BOOST_TEST(line.value("upstream", "") == scripted.address());
  BOOST_TEST(line.value("bytes_from_client", -1) == 0);
  BOOST_TEST(line.value("bytes_to_upstream", -1) == 0);
  BOOST_TEST(line.value("bytes_from_upstream", -1) == 100);
  BOOST_TEST(line.value("bytes_to_client", -1) == 100);
  BOOST_TEST(line.value("reason", "") == "upstream closed");
}

BOOST_AUTO_TEST_SUITE_END()
