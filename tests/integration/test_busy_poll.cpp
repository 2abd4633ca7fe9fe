// "busy_poll_us": a worker that runs out of events goes on polling for up to that long before
// it sleeps, as long as its recent idle gaps ended within it: bytes still arrive whole and in
// order, the polling shows up as CPU time while events come close enough together, and events
// further apart than the limit, or none, cost no polling.
#define BOOST_TEST_MODULE busy_poll
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <thread>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

// The process's user + system CPU seconds, from /proc/PID/stat (fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "PID (comm) "
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // state .. cmajflt
  long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Proxy {
  TempDir dir;
  std::unique_ptr<Server> echo = echo_server();
  std::uint16_t port = free_port();
  std::unique_ptr<Sluice> sluice;

  unsigned busy_poll_us;

  explicit Proxy(unsigned busy) : busy_poll_us(busy) {
    json l = {{"listen", loopback(port)}, {"upstream", echo->address()}};
    json config = {{"workers", 1}, {"busy_poll_us", busy_poll_us}, {"listeners", {l}}};
    write_json(dir.file("proxy.json"), config);
    sluice = Sluice::run_config(dir.file("proxy.json"));
  }

  // CPU seconds sluice spends while a client echoes 64 bytes every `gap`, for about a second;
  // every echo must come back whole.
  double cpu_while_echoing(std::chrono::microseconds gap) {
    Socket s = Socket::connect(port);
    const double before = cpu_seconds(sluice->process().pid());
    const auto end = std::chrono::steady_clock::now() + Millis(1000);
    std::size_t echoes = 0;
    while (std::chrono::steady_clock::now() < end) {
      const std::string msg = random_bytes(64, echoes);
      BOOST_REQUIRE_EQUAL(roundtrip(s, msg), msg);
      ++echoes;
      std::this_thread::sleep_for(gap);
    }
    BOOST_TEST(echoes > 10u);
    const double cpu = cpu_seconds(sluice->process().pid()) - before;
    BOOST_TEST_MESSAGE("busy_poll_us " << busy_poll_us << ", an echo every " << gap.count()
                                       << " us for 1 s: " << cpu << " CPU s");
    return cpu;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(polls_between_events_and_sleeps_when_idle) {
  Proxy p(5000);  // longer than the client's pauses below: the worker never sleeps among them
  const double polling = p.cpu_while_echoing(std::chrono::microseconds(1000));
  BOOST_TEST(polling > 0.3);

  // Idle: no event, so after 5 ms the worker sleeps in epoll_wait as without busy polling.
  std::this_thread::sleep_for(Millis(100));
  const double before = cpu_seconds(p.sluice->process().pid());
  std::this_thread::sleep_for(Millis(1000));
  const double idle = cpu_seconds(p.sluice->process().pid()) - before;
  BOOST_TEST_MESSAGE("idle for 1 s: " << idle << " CPU s");
  BOOST_TEST(idle < 0.1);

  BOOST_TEST(p.sluice->log().find("each polling up to 5000 us before it sleeps") !=
             std::string::npos);
  BOOST_TEST(p.sluice->stop() == 0);  // SIGTERM reaches a polling worker too
}

BOOST_AUTO_TEST_CASE(events_further_apart_than_the_limit_are_not_polled_for) {
  // Gaps of 10 ms against a 5 ms limit, each after the upstream's quick reply: polling would
  // catch the replies only after spending 5 ms on every wait, so the worker does not poll (a
  // fixed 5 ms poll after every event costs half a core here).
  Proxy p(5000);
  const double sparse = p.cpu_while_echoing(std::chrono::microseconds(10000));
  BOOST_TEST(sparse < 0.1);
  BOOST_TEST(p.sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(off_by_default_the_worker_sleeps_between_events) {
  Proxy p(0);
  const double sleeping = p.cpu_while_echoing(std::chrono::microseconds(1000));
  BOOST_TEST(sleeping < 0.3);
  BOOST_TEST(p.sluice->stop() == 0);
}
