// tee end to end: a mirror gets exactly the client's bytes while the real upstream answers; a
// mirror that never reads, or one that refuses the connection, never hurts the real channel.
#define BOOST_TEST_MODULE tee
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstring>
#include <mutex>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// A mirror that reads each connection to its end and keeps its length and SHA-256.
struct RecordingMirror {
  struct Copy {
    std::size_t bytes = 0;
    std::string sha;
    End end = End::data;
  };
  RecordingMirror()
      : server([this](Socket& s) {
          Sha256 h;
          Copy c;
          c.end = hash_to_end(s, h, c.bytes);
          c.sha = h.hex();
          std::lock_guard lock(mutex);
          copies.push_back(c);
        }) {}
  std::vector<Copy> seen() {
    std::lock_guard lock(mutex);
    return copies;
  }
  std::mutex mutex;
  std::vector<Copy> copies;
  Server server;  // last: its handlers use the members above
};

json listener(const char* name, std::uint16_t port, const std::string& upstream, json tee) {
  tee["type"] = "tee";
  return {{"name", name},
          {"listen", loopback(port)},
          {"upstream", upstream},
          {"middlewares", json::array({tee})}};
}

struct Fixture {
  Fixture()
      : echo(echo_server()),
        // Accepts and never reads, until the test ends.
        stuck([this](Socket&) { wait_until([this] { return release.load(); }, 300s); }),
        refused_port(free_port()),
        recorded(free_port()),
        slowed(free_port()),
        refused(free_port()),
        named(free_port()) {
    const auto config = write_json(
        dir.file("proxy.json"),
        {{"workers", 2},
         {"listeners",
          // The client sends at loopback speed from the first millisecond, before
          // the mirror has even accepted: room for the whole transfer, so that this
          // listener tests the copy's bytes, not the mirror's speed.
          {listener("recorded", recorded, echo->address(),
                    {{"mirrors", {recorder.server.address()}}, {"max_buffer", "16MiB"}}),
           listener("slowed", slowed, echo->address(), {{"mirrors", {stuck.address()}}}),
           listener("refused", refused, echo->address(), {{"mirrors", {loopback(refused_port)}}}),
           // Looked up by name (ctx.resolve), whichever of ::1 and 127.0.0.1 first.
           listener("named", named, echo->address(),
                    {{"mirrors", {"localhost:" + std::to_string(recorder.server.port())}},
                     {"max_buffer", "16MiB"}})}}});
    sluice = Sluice::run_config(config);
  }
  ~Fixture() {
    release = true;
    if (sluice) BOOST_CHECK_MESSAGE(sluice->stop() == 0, "sluice exit; log:\n" << sluice->log());
  }
  TempDir dir;
  std::unique_ptr<Server> echo;
  RecordingMirror recorder;
  std::atomic<bool> release{false};
  Server stuck;
  std::uint16_t refused_port;  // nothing listens there
  std::uint16_t recorded, slowed, refused, named;
  std::unique_ptr<Sluice> sluice;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(tee_end_to_end, Fixture)

BOOST_AUTO_TEST_CASE(the_mirror_receives_exactly_the_client_bytes) {
  constexpr std::size_t kBytes = 4u << 20;
  const EchoTransfer r = echo_transfer(recorded, kBytes, 7);
  BOOST_TEST(echo_problem(r, kBytes) == "");
  // The mirror's copy ends with the FIN that follows the client's half-close.
  BOOST_REQUIRE(recorder.server.wait_finished(1));
  const auto copies = recorder.seen();
  BOOST_REQUIRE(copies.size() == 1u);
  BOOST_TEST(copies[0].bytes == kBytes);
  BOOST_TEST(copies[0].sha == r.sent_sha);
  BOOST_TEST(std::string(to_string(copies[0].end)) == "EOF");
  // The channel may close before the mirror got everything (the rest goes out during the
  // linger): the line says what was copied or still queued then, and nothing may be dropped.
  const std::string mirror = "recorded tee: mirror " + recorder.server.address() + ": ";
  BOOST_REQUIRE_MESSAGE(sluice->wait_for_log(mirror), sluice->log());
  const std::string log = sluice->log();
  const auto at = log.find(mirror);
  const std::string line = log.substr(at, log.find('\n', at) - at);
  BOOST_TEST(line.find(" bytes copied, 0 dropped") != std::string::npos, line);
}

BOOST_AUTO_TEST_CASE(a_mirror_given_by_host_name_is_looked_up_and_gets_the_bytes) {
  constexpr std::size_t kBytes = 1u << 20;
  const EchoTransfer r = echo_transfer(named, kBytes, 11);
  BOOST_TEST(echo_problem(r, kBytes) == "");
  BOOST_REQUIRE_MESSAGE(recorder.server.wait_finished(1), sluice->log());
  const auto copies = recorder.seen();
  BOOST_REQUIRE(copies.size() == 1u);
  BOOST_TEST(copies[0].bytes == kBytes);
  BOOST_TEST(copies[0].sha == r.sent_sha);
}

BOOST_AUTO_TEST_CASE(a_mirror_that_never_reads_does_not_slow_or_break_the_channel) {
  constexpr std::size_t kBytes = 64u << 20;
  const EchoTransfer r = echo_transfer(slowed, kBytes, 8);
  BOOST_TEST(echo_problem(r, kBytes) == "");
  BOOST_TEST(stuck.accepted() == 1u);
  const std::string mirror = "slowed tee: mirror " + stuck.address() + ": ";
  BOOST_TEST(sluice->wait_for_log(mirror + "more than max_buffer (1048576 bytes) queued"),
             sluice->log());
  BOOST_TEST(sluice->process().log_count("more than max_buffer") == 1u);
  BOOST_TEST(sluice->wait_for_log(" dropped (over max_buffer)"), sluice->log());
}

BOOST_AUTO_TEST_CASE(a_refused_mirror_leaves_the_channel_unaffected) {
  constexpr std::size_t kBytes = 1u << 20;
  const EchoTransfer r = echo_transfer(refused, kBytes, 9);
  BOOST_TEST(echo_problem(r, kBytes) == "");
  const std::string mirror = "refused tee: mirror " + loopback(refused_port) + ": ";
  BOOST_TEST(sluice->wait_for_log(mirror + "connect failed: Connection refused"), sluice->log());
  BOOST_TEST(sluice->wait_for_log(mirror + "0 bytes copied, 1048576 dropped (connect failed)"),
             sluice->log());
}

BOOST_AUTO_TEST_SUITE_END()
