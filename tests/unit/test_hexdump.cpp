#define BOOST_TEST_MODULE hexdump
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "hexdump/hexdump.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using nlohmann::json;

namespace {

struct Fixture {
  Types types;
  Fixture() { sluice::builtin::register_hexdump(types); }
  Chain chain(json options = json::object()) {
    options["type"] = "hexdump";
    return Chain(types, json::array({options}));
  }
};

// The lines of every log message of the harness, with the "hexdump: " prefix checked and cut.
std::vector<std::string> log_lines(const Harness& h) {
  std::vector<std::string> out;
  for (const auto& message : h.logs) {
    BOOST_REQUIRE_EQUAL(message.rfind("hexdump: ", 0), 0u);
    std::istringstream in(message.substr(9));
    for (std::string line; std::getline(in, line);) out.push_back(line);
  }
  return out;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(hexdump, Fixture)

BOOST_AUTO_TEST_CASE(dumps_like_hexdump_c_and_passes_the_chunk_unchanged) {
  auto c = chain();
  Harness h(c);
  h.feed(Direction::upstream, "0123456789abcdefXYZ\n");
  BOOST_TEST(h.take(Direction::upstream) == "0123456789abcdefXYZ\n");
  BOOST_TEST_REQUIRE(h.logs.size() == 1u);  // one message per chunk
  const std::vector<std::string> expected = {
      "upstream offset 0 length 20",
      "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|",
      "00000010  58 59 5a 0a                                       |XYZ.|",
  };
  const auto lines = log_lines(h);
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(non_printable_bytes_show_as_dots_and_go_through_untouched) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  auto c = chain();
  Harness h(c);
  h.feed(Direction::downstream, all);
  BOOST_TEST(h.take(Direction::downstream) == all);
  const auto lines = log_lines(h);
  BOOST_TEST_REQUIRE(lines.size() == 17u);
  BOOST_TEST(lines[0] == "downstream offset 0 length 256");
  BOOST_TEST(lines[1] ==
             "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|");
  BOOST_TEST(lines[3] ==
             "00000020  20 21 22 23 24 25 26 27  28 29 2a 2b 2c 2d 2e 2f  | !\"#$%&'()*+,-./|");
  BOOST_TEST(lines[8] ==
             "00000070  70 71 72 73 74 75 76 77  78 79 7a 7b 7c 7d 7e 7f  |pqrstuvwxyz{|}~.|");
  BOOST_TEST(lines[16] ==
             "000000f0  f0 f1 f2 f3 f4 f5 f6 f7  f8 f9 fa fb fc fd fe ff  |................|");
}

BOOST_AUTO_TEST_CASE(offsets_count_per_direction_across_chunks) {
  auto c = chain();
  Harness h(c);
  h.feed(Direction::upstream, "abc");
  h.feed(Direction::upstream, "defgh");
  h.feed(Direction::downstream, "xy");
  h.feed(Direction::upstream, "i");
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "abcdefghi");
  BOOST_TEST(h.take(Direction::downstream) == "xy");
  const std::vector<std::string> expected = {
      "upstream offset 0 length 3",
      "00000000  61 62 63                                          |abc|",
      "upstream offset 3 length 5",
      "00000003  64 65 66 67 68                                    |defgh|",
      "downstream offset 0 length 2",
      "00000000  78 79                                             |xy|",
      "upstream offset 8 length 1",
      "00000008  69                                                |i|",
      "upstream end at offset 9",
  };
  const auto lines = log_lines(h);
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(offsets_are_per_channel) {
  auto c = chain();
  Harness first(c);
  first.feed(Direction::upstream, "abcdef");
  Harness second(c);
  second.feed(Direction::upstream, "gh");
  BOOST_TEST(log_lines(second).at(0) == "upstream offset 0 length 2");
}

BOOST_AUTO_TEST_CASE(max_bytes_truncates_and_says_how_much_was_left_out) {
  auto c = chain(json::parse(R"({"max_bytes": 20})"));
  Harness h(c);
  const std::string data(50, 'z');
  h.feed(Direction::upstream, data);
  BOOST_TEST(h.take(Direction::upstream) == data);
  const std::vector<std::string> expected = {
      "upstream offset 0 length 50 (30 bytes left out)",
      "00000000  7a 7a 7a 7a 7a 7a 7a 7a  7a 7a 7a 7a 7a 7a 7a 7a  |zzzzzzzzzzzzzzzz|",
      "00000010  7a 7a 7a 7a                                       |zzzz|",
  };
  const auto lines = log_lines(h);
  BOOST_TEST(lines == expected, boost::test_tools::per_element());

  h.logs.clear();
  h.feed(Direction::upstream, "short");  // under the cap: no note
  BOOST_TEST(log_lines(h).at(0) == "upstream offset 50 length 5");
}

BOOST_AUTO_TEST_CASE(max_bytes_takes_a_size_with_a_unit) {
  auto c = chain({{"max_bytes", "1KiB"}});
  Harness h(c);
  h.feed(Direction::upstream, std::string(1500, '.'));
  const auto lines = log_lines(h);
  BOOST_TEST(lines.size() == 1u + 1024u / 16u);
  BOOST_TEST(lines.front() == "upstream offset 0 length 1500 (476 bytes left out)");
  BOOST_TEST(lines.back().substr(0, 10) == "000003f0  ");
}

BOOST_AUTO_TEST_CASE(max_bytes_zero_logs_the_header_line_only) {
  auto c = chain(json::parse(R"({"max_bytes": 0})"));
  Harness h(c);
  h.feed(Direction::upstream, "hello");
  h.feed(Direction::downstream, std::string(100, 'x'));
  BOOST_TEST(h.take(Direction::upstream) == "hello");
  BOOST_TEST(h.take(Direction::downstream) == std::string(100, 'x'));
  const std::vector<std::string> expected = {"hexdump: upstream offset 0 length 5",
                                             "hexdump: downstream offset 0 length 100"};
  BOOST_TEST(h.logs == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(bad_options_name_their_path) {
  try {
    chain({{"max_bytes", "lots"}});
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/max_bytes");
  }
  try {
    chain(json::parse(R"({"max_byte": 10})"));
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/max_byte");
  }
}

BOOST_AUTO_TEST_SUITE_END()
