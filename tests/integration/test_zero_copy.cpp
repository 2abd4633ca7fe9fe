// The zero-copy path: a listener whose chain needs no bytes (none, or only byte-blind middlewares
// such as access-log) moves bulk transfers with splice(2), says so at start-up and in each
// channel's close line, and keeps every byte; a chain that sees bytes, or "splice": false, never
// splices; the pipes come from a bounded pool however many channels are busy.
#define BOOST_TEST_MODULE zero_copy
#include <boost/test/unit_test.hpp>

#include <sys/ioctl.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <regex>
#include <thread>

#include "support.hpp"

using namespace it;
using json = nlohmann::json;

namespace {

constexpr std::size_t kBulk = 16u << 20;
constexpr char kZeroCopy[] = "bulk transfers zero-copy (splice)";

struct Proxy {
  TempDir dir;
  std::unique_ptr<Server> echo = echo_server();
  std::uint16_t port = free_port();
  std::unique_ptr<Sluice> sluice;

  explicit Proxy(json listener_extra, json top_extra = json::object()) {
    json l = {{"name", "zc"}, {"listen", loopback(port)}, {"upstream", echo->address()}};
    l.update(listener_extra);
    json config = {{"workers", 1}, {"listeners", {l}}};
    config.update(top_extra);
    write_json(dir.file("proxy.json"), config);
    sluice = Sluice::run_config(dir.file("proxy.json"), {"--log-level", "debug"});
  }
};

// The close lines of the log, in order.
std::vector<std::string> close_lines(const Sluice& s) {
  std::vector<std::string> out;
  std::istringstream in(s.log());
  for (std::string line; std::getline(in, line);)
    if (line.find(" zc: closed: ") != std::string::npos) out.push_back(line);
  return out;
}

// The zero-copy byte counts of a close line, or {0, 0} if it has none.
std::pair<std::uint64_t, std::uint64_t> spliced(const std::string& close_line) {
  static const std::regex re(R"(zero-copy (\d+) B up, (\d+) B down)");
  std::smatch m;
  if (!std::regex_search(close_line, m, re)) return {0, 0};
  return {std::stoull(m[1]), std::stoull(m[2])};
}

std::size_t open_pipes(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    const auto target = std::filesystem::read_symlink(e.path(), lec);
    if (!lec && target.string().rfind("pipe:", 0) == 0) ++n;
  }
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(empty_chain_splices_bulk_and_copies_small_messages) {
  Proxy p(json::object());
  BOOST_TEST(p.sluice->log().find(kZeroCopy) != std::string::npos, p.sluice->log());
  BOOST_TEST(echo_problem(echo_transfer(p.port, kBulk, 7), kBulk) == "");
  {
    Socket s = Socket::connect(p.port);
    BOOST_TEST(roundtrip(s, "ping") == "ping");
  }
  BOOST_REQUIRE(p.sluice->wait_for_log(" zc: closed: ", kWait, 2));
  const auto lines = close_lines(*p.sluice);
  BOOST_REQUIRE(lines.size() == 2u);
  const auto [up, down] = spliced(lines[0]);
  BOOST_TEST_CONTEXT(lines[0]) {
    // How much of it depends on the sizes of the reads (so on the machine's load); both
    // directions went through pipes at least once.
    BOOST_TEST(up > 0u);
    BOOST_TEST(down > 0u);
    BOOST_TEST(up <= kBulk);
    BOOST_TEST(down <= kBulk);
  }
  BOOST_TEST(spliced(lines[1]).first == 0u, lines[1]);
  BOOST_TEST(p.sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(max_pipes_0_turns_splice_off) {
  Proxy p(json::object(), {{"max_pipes", 0}});
  BOOST_TEST(p.sluice->log().find("[], bytes copied, skipping the chain (\"max_pipes\": 0)") !=
                 std::string::npos,
             p.sluice->log());
  BOOST_TEST(echo_problem(echo_transfer(p.port, kBulk, 10), kBulk) == "");
  BOOST_REQUIRE(p.sluice->wait_for_log(" zc: closed: "));
  BOOST_TEST(spliced(close_lines(*p.sluice).at(0)).first == 0u);
  BOOST_TEST(p.sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(byte_blind_access_log_keeps_zero_copy_and_counts) {
  TempDir logs;
  const auto access_log = logs.file("access.log");
  Proxy p(json{{"middlewares", {{{"type", "access-log"}, {"path", access_log.string()}}}}});
  BOOST_TEST(p.sluice->log().find(kZeroCopy) != std::string::npos, p.sluice->log());
  BOOST_TEST(echo_problem(echo_transfer(p.port, kBulk, 8), kBulk) == "");
  BOOST_REQUIRE(wait_until([&] { return read_lines(access_log).size() == 1; }, kWait));
  const json j = json::parse(read_lines(access_log)[0]);
  BOOST_TEST(j.value("bytes_from_client", 0ull) == kBulk);
  BOOST_TEST(j.value("bytes_to_upstream", 0ull) == kBulk);
  BOOST_TEST(j.value("bytes_from_upstream", 0ull) == kBulk);
  BOOST_TEST(j.value("bytes_to_client", 0ull) == kBulk);
  BOOST_REQUIRE(p.sluice->wait_for_log(" zc: closed: "));
  BOOST_TEST(spliced(close_lines(*p.sluice).at(0)).first > 0u);
  BOOST_TEST(p.sluice->stop() == 0);
}

BOOST_AUTO_TEST_CASE(a_chain_that_sees_bytes_or_splice_false_never_splices) {
  const std::pair<json, std::string> cases[] = {
      {json{{"middlewares", {{{"type", "access-log"}}, {{"type", "pass"}}}}},
       "bytes copied through the chain (pass read them)"},
      {json{{"splice", false}}, "bytes copied, skipping the chain (\"splice\": false)"}};
  for (const auto& [extra, path] : cases) {
    BOOST_TEST_CONTEXT(extra.dump()) {
      Proxy p(extra);
      BOOST_TEST(p.sluice->log().find(kZeroCopy) == std::string::npos, p.sluice->log());
      // The start-up line says why the bytes are copied.
      BOOST_TEST(p.sluice->log().find("], " + path) != std::string::npos, p.sluice->log());
      BOOST_TEST(echo_problem(echo_transfer(p.port, kBulk, 9), kBulk) == "");
      BOOST_REQUIRE(p.sluice->wait_for_log(" zc: closed: "));
      const auto line = close_lines(*p.sluice).at(0);
      BOOST_TEST(line.find("zero-copy") == std::string::npos, line);
      BOOST_TEST(p.sluice->stop() == 0);
    }
  }
}

namespace {

// The bytes waiting in each kernel pipe of process `pid`, by pipe ("pipe:[inode]"); both ends
// of a pipe name the same one.
std::map<std::string, int> pipe_fill(pid_t pid) {
  std::map<std::string, int> fill;
  inspect_fds(pid, "pipe:", [&](int fd, const std::string& link) {
    int n = 0;
    if (::ioctl(fd, FIONREAD, &n) == 0) fill[link] = n;
    return false;
  });
  return fill;
}

std::size_t pipes_holding_bytes(const std::map<std::string, int>& fill) {
  return static_cast<std::size_t>(
      std::count_if(fill.begin(), fill.end(), [](const auto& p) { return p.second > 0; }));
}

}  // namespace

// With max_pipes 3 on one worker, channels whose clients do not read yet stall with every pipe
// full of their bytes; 24 bulk channels then read buffered, all of them, and every byte of
// every channel still arrives once the stalled clients read. No more than 3 pipes are ever open.
BOOST_AUTO_TEST_CASE(pipes_come_from_a_bounded_pool) {
  constexpr std::size_t kChannels = 24, kBytes = 4u << 20;
  // More than every buffer between the stalled client's writer and its unread receive buffer.
  constexpr std::size_t kStalledBytes = 64u << 20, kMostStalled = 8;
  constexpr std::size_t kMaxPipes = 3, kMaxFree = 3;  // the free list keeps min(8, max_pipes)
  Proxy p(json::object(), {{"max_pipes", kMaxPipes}});
  const pid_t pid = p.sluice->process().pid();
  const std::size_t before = open_pipes(pid);  // Asio's signal handling has a pipe of its own
  std::size_t most = 0;                        // read once the sampler has stopped
  std::jthread sampler([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      most = std::max(most, open_pipes(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  // Stalled channels, one more until every pipe holds bytes that cannot move: a direction gives
  // its pipe back only once the pipe is empty, so the pool stays exhausted until they read.
  std::vector<EchoTransfer> stalled(kMostStalled);
  std::vector<std::jthread> stallers;
  std::promise<void> read_now;  // after the stallers: a failed REQUIRE breaks it, and they read
  const std::shared_future<void> read_after = read_now.get_future().share();
  std::size_t full = 0;
  while (stallers.size() < kMostStalled && full < kMaxPipes) {
    const std::size_t i = stallers.size();
    stallers.emplace_back(
        [&, i] { stalled[i] = echo_transfer(p.port, kStalledBytes, 50 + i, read_after); });
    // Full and unchanged over 200 ms: the stall has set in, not a transfer in passing.
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      const auto fill = pipe_fill(pid);
      std::this_thread::sleep_for(200ms);
      full = fill == pipe_fill(pid) ? pipes_holding_bytes(fill) : 0;
      if (full == kMaxPipes) break;
    }
  }
  BOOST_TEST_MESSAGE(stallers.size() << " stalled channels hold " << full << " full pipes");
  BOOST_REQUIRE_EQUAL(full, kMaxPipes);

  std::vector<EchoTransfer> results(kChannels);
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < kChannels; ++i)
      threads.emplace_back([&, i] { results[i] = echo_transfer(p.port, kBytes, 100 + i); });
  }
  for (std::size_t i = 0; i < kChannels; ++i)
    BOOST_TEST(echo_problem(results[i], kBytes) == "", "channel " << i);
  read_now.set_value();
  const std::size_t n_stalled = stallers.size();
  stallers.clear();  // joins them
  for (std::size_t i = 0; i < n_stalled; ++i)
    BOOST_TEST(echo_problem(stalled[i], kStalledBytes) == "", "stalled channel " << i);
  sampler.request_stop();
  sampler.join();
  BOOST_TEST_MESSAGE("pipe descriptors open at most: " << most - before);
  BOOST_TEST(most - before <= 2 * kMaxPipes, "two descriptors per pipe");
  BOOST_REQUIRE(p.sluice->wait_for_log(" zc: closed: ", kWait, kChannels + n_stalled));
  // Once idle, only the free list stays open.
  BOOST_TEST(open_pipes(pid) - before <= 2 * kMaxFree);
  std::uint64_t zero_copy = 0;
  for (const auto& line : close_lines(*p.sluice)) {
    const auto [up, down] = spliced(line);
    zero_copy += up + down;
  }
  const std::uint64_t copied = 2 * (kChannels * kBytes + n_stalled * kStalledBytes) - zero_copy;
  BOOST_TEST_MESSAGE("zero-copy " << zero_copy << " B, copied " << copied << " B");
  BOOST_TEST(zero_copy > 0u);
  // The 24 channels moved everything while the pool was empty: not a byte of theirs spliced.
  BOOST_TEST(copied >= 2 * kChannels * kBytes, "with the pool empty, channels read buffered");
  BOOST_TEST(p.sluice->stop() == 0);
}

// `sluice check` says, before anything runs, which path each listener's bytes will take.
BOOST_AUTO_TEST_CASE(check_tells_each_listener_s_data_path) {
  TempDir dir;
  const json config = {
      {"listeners",
       {{{"name", "blind"},
         {"listen", "127.0.0.1:1"},
         {"upstream", "127.0.0.1:2"},
         {"middlewares", {{{"type", "access-log"}}}}},
        {{"name", "seen"},
         {"listen", "127.0.0.1:3"},
         {"upstream", "127.0.0.1:2"},
         {"middlewares", {{{"type", "hexdump"}}, {{"type", "access-log"}}, {{"type", "pass"}}}}}}}};
  const auto file = write_json(dir.file("check.json"), config);
  const CommandResult r = run_sluice({"check", "-c", file.string()});
  BOOST_TEST(r.exit_code == 0, r.output);
  BOOST_TEST(
      r.output.find("  listener blind: bulk transfers zero-copy (splice)\n") != std::string::npos,
      r.output);
  BOOST_TEST(r.output.find("  listener seen: bytes copied through the chain (hexdump, pass read "
                           "them)\n") != std::string::npos,
             r.output);
}
