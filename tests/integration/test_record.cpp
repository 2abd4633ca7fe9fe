// record through the real engine, then `sluice replay` of what it wrote: against the same echo
// server (match), against servers that answer differently or close early (differs, with the
// offset), and with bad files, unknown channels and bad usage (exit 2).
#define BOOST_TEST_MODULE record
#include <boost/test/unit_test.hpp>

#include <cctype>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

const std::vector<std::string> kChunks = {"42: hello, ", "record ", "and replay\n"};

// Echoes every chunk upper-cased, until EOF.
void upper_case_until_eof(Socket& s) {
  std::string buf(64 * 1024, '\0');
  for (;;) {
    std::size_t n = 0;
    const End e = s.recv_some(buf.data(), buf.size(), n);
    if (e == End::eof) s.shutdown_write();
    if (e != End::data) return;
    for (std::size_t i = 0; i < n; ++i)
      buf[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(buf[i])));
    if (!s.send_all(std::string_view(buf.data(), n))) return;
  }
}

// The channel ids of the recording's close events, once there are `n` of them.
std::vector<std::uint64_t> wait_closed(const std::filesystem::path& file, std::size_t n) {
  std::vector<std::uint64_t> ids;
  const bool done = wait_until(
      [&] {
        ids.clear();
        for (const auto& line : read_lines(file)) {
          const json j = json::parse(line);
          if (j.at("event") == "close") ids.push_back(j.at("channel").get<std::uint64_t>());
        }
        return ids.size() >= n;
      },
      kWait);
  if (!done)
    throw std::runtime_error("the recording has " + std::to_string(ids.size()) +
                             " closed channel(s), expected " + std::to_string(n) + ":\n" +
                             read_file(file));
  return ids;
}

struct Fixture {
  Fixture() : echo(echo_server()), port(free_port()) {
    const auto config =
        write_json(dir.file("proxy.json"),
                   {{"workers", 2},
                    {"listeners",
                     {{{"name", "recorded"},
                       {"listen", loopback(port)},
                       {"upstream", echo->address()},
                       {"middlewares", {{{"type", "record"}, {"path", recording.string()}}}}}}}});
    sluice = Sluice::run_config(config);
  }
  ~Fixture() {
    if (sluice) BOOST_CHECK_MESSAGE(sluice->stop() == 0, "sluice exit; log:\n" << sluice->log());
  }
  // One request/response exchange per chunk, then the client's half-close.
  void talk(const std::vector<std::string>& chunks) {
    Socket client = Socket::connect(port);
    for (const auto& c : chunks) BOOST_TEST(roundtrip(client, c) == c);
    client.shutdown_write();
    std::string rest;
    BOOST_TEST(std::string(to_string(client.recv_to_end(rest))) == "EOF");
  }
  CommandResult replay(const std::string& upstream, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replay", recording.string(), "--upstream", upstream};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_sluice(args);
    BOOST_TEST_MESSAGE("sluice replay " << upstream << ": exit " << r.exit_code << "\n"
                                        << r.output);
    return r;
  }

  TempDir dir;
  std::filesystem::path recording = dir.file("recording.jsonl");
  std::unique_ptr<Server> echo;
  std::uint16_t port;
  std::unique_ptr<Sluice> sluice;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(record, Fixture)

BOOST_AUTO_TEST_CASE(replay_against_the_same_server_matches) {
  talk(kChunks);
  wait_closed(recording, 1);
  for (const char* timing : {"fast", "original"}) {
    const auto r = replay(echo->address(), {"--timing", timing});
    BOOST_TEST(r.exit_code == 0, timing << ": " << r.output);
    BOOST_TEST(contains(r.output, "match: channel"), r.output);
    BOOST_TEST(contains(r.output, "29 bytes sent, 29 received, 29 recorded"), r.output);
  }
}

BOOST_AUTO_TEST_CASE(replay_against_a_different_server_names_the_first_difference) {
  talk(kChunks);
  wait_closed(recording, 1);
  Server upper(upper_case_until_eof);
  const auto r = replay(upper.address());
  BOOST_TEST(r.exit_code == 1, r.output);
  // "42: " is the same upper-cased; 'h' at offset 4 is the first byte that is not.
  BOOST_TEST(contains(r.output, "differs: channel"), r.output);
  BOOST_TEST(contains(r.output, "first difference at offset 4 "), r.output);
  BOOST_TEST(contains(r.output, "recorded: 34 32 3a 20 68 65 6c 6c"), r.output);
  BOOST_TEST(contains(r.output, "got:      34 32 3a 20 48 45 4c 4c"), r.output);
  BOOST_TEST(contains(r.output, "|42: HELLO, RECOR|"), r.output);
}

BOOST_AUTO_TEST_CASE(replay_against_a_server_that_closes_early_differs) {
  talk(kChunks);
  wait_closed(recording, 1);
  // Answers the first chunk, then closes.
  Server short_lived([](Socket& s) {
    const std::string first = s.recv_exact(kChunks[0].size());
    s.send_all(first);
  });
  const auto r = replay(short_lived.address(), {"--timeout", "2s"});
  BOOST_TEST(r.exit_code == 1, r.output);
  BOOST_TEST(contains(r.output, "the answer stops at offset 11"), r.output);
}

BOOST_AUTO_TEST_CASE(replay_picks_a_channel_by_id) {
  talk(kChunks);
  wait_closed(recording, 1);
  talk({"second channel"});
  const auto ids = wait_closed(recording, 2);
  BOOST_TEST_REQUIRE(ids.size() == 2u);
  const auto r = replay(echo->address(), {"--channel", std::to_string(ids[1])});
  BOOST_TEST(r.exit_code == 0, r.output);
  BOOST_TEST(contains(r.output, "match: channel " + std::to_string(ids[1]) + ", 14 bytes sent"),
             r.output);
  // Without --channel: the first one.
  const auto first = replay(echo->address());
  BOOST_TEST(contains(first.output, "match: channel " + std::to_string(ids[0]) + ", 29 bytes"),
             first.output);

  const auto unknown = replay(echo->address(), {"--channel", "999999"});
  BOOST_TEST(unknown.exit_code == 2, unknown.output);
  BOOST_TEST(contains(unknown.output,
                      "no channel 999999 (channels in the file: " + std::to_string(ids[0]) + ", " +
                          std::to_string(ids[1]) + ")"),
             unknown.output);
}

BOOST_AUTO_TEST_CASE(bad_lines_of_other_channels_and_after_the_close_are_skipped) {
  // Channel 5 was recorded completely; channel 6 has a bad line in between, and the file ends in
  // a line cut short (as while sluice still writes).
  const auto file = write_json(dir.file("unused.json"), json::object());  // a TempDir file name
  write_file(file,
             R"({"channel":5,"t":0,"event":"open","time":"2026-01-01T00:00:00.000Z",)"
             R"("listener":"l","client":"127.0.0.1:1","upstream":"127.0.0.1:2","messages":false})"
             "\n"
             R"({"channel":6,"t":0,"event":"data","direction":"upstream","data":"not base64!"})"
             "\n"
             R"({"channel":5,"t":0.01,"event":"connected","upstream":"127.0.0.1:2"})"
             "\n"
             R"({"channel":5,"t":0.02,"event":"data","direction":"upstream","data":"aGk="})"
             "\n"
             R"({"channel":5,"t":0.03,"event":"data","direction":"downstream","data":"aGk="})"
             "\n"
             R"({"channel":5,"t":0.04,"event":"end","direction":"upstream"})"
             "\n"
             R"({"channel":5,"t":0.05,"event":"end","direction":"downstream"})"
             "\n"
             R"({"channel":5,"t":0.06,"event":"close","time":"2026-01-01T00:00:00.060Z",)"
             R"("reason":"client closed","upstream_connected":true,"bytes_from_client":2,)"
             R"("bytes_to_upstream":2,"bytes_from_upstream":2,"bytes_to_client":2})"
             "\n"
             R"({"channel":7,"t":0.5,"event":"da)");
  const auto r = run_sluice({"replay", file.string(), "--upstream", echo->address()});
  BOOST_TEST(r.exit_code == 0, r.output);
  BOOST_TEST(contains(r.output, "match: channel 5"), r.output);
  // A bad line of the channel asked for still is an error.
  const auto six =
      run_sluice({"replay", file.string(), "--upstream", echo->address(), "--channel", "6"});
  BOOST_TEST(six.exit_code == 2, six.output);
  BOOST_TEST(contains(six.output, "line 2: \"data\" is not valid base64"), six.output);
}

BOOST_AUTO_TEST_CASE(bad_files_and_usage_exit_2) {
  const auto missing =
      run_sluice({"replay", dir.file("none.jsonl").string(), "--upstream", echo->address()});
  BOOST_TEST(missing.exit_code == 2, missing.output);
  BOOST_TEST(contains(missing.output, "none.jsonl: cannot open"), missing.output);

  const auto bad = write_json(dir.file("unused.json"), json::object());  // a TempDir file name
  write_file(bad,
             R"({"channel":5,"t":0,"event":"open","time":"2026-01-01T00:00:00.000Z",)"
             R"("listener":"l","client":"127.0.0.1:1","upstream":"127.0.0.1:2","messages":false})"
             "\n"
             R"({"channel":5,"t":0.1,"event":"data","direction":"upstream","data":"aGk="})"
             "\n"
             R"({"channel":5,"t":0.2,"event":"data","direction":"upstream","data":"not base64!"})"
             "\n");
  const auto r = run_sluice({"replay", bad.string(), "--upstream", echo->address()});
  BOOST_TEST(r.exit_code == 2, r.output);
  BOOST_TEST(contains(r.output, "line 3: \"data\" is not valid base64"), r.output);

  write_file(bad, "{\"channel\":5,\n");
  const auto torn = run_sluice({"replay", bad.string(), "--upstream", echo->address()});
  BOOST_TEST(torn.exit_code == 2, torn.output);
  BOOST_TEST(contains(torn.output, "line 1: not JSON"), torn.output);

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"replay"},
        {"replay", recording.string()},
        {"replay", recording.string(), "--upstream", echo->address(), "--timing", "slow"},
        {"replay", recording.string(), "--upstream", echo->address(), "--timeout", "soon"},
        {"replay", recording.string(), "--upstream", "no-port"}}) {
    write_file(recording, "");
    const auto u = run_sluice(args);
    BOOST_TEST(u.exit_code == 2, u.output);
    BOOST_TEST(contains(u.output, "sluice"), u.output);
  }
}

BOOST_AUTO_TEST_SUITE_END()
