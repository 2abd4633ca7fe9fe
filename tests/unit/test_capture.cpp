// The capture middleware through the harness: what it writes into files in a temp folder.
#define BOOST_TEST_MODULE capture
#include <dirent.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "capture/capture.hpp"
#include "pcap_reader.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace flag {
constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

namespace {

// Defers the connect in on_open; on the first upstream chunk sets the upstream given as option
// "to" (if any) and connects. With "to" absent it never connects.
class Defer final : public sluice::Middleware {
 public:
  explicit Defer(std::string to) : to_(std::move(to)) {}
  void on_open(sluice::Context& ctx) override { ctx.defer_connect(); }
  sluice::Verdict on_data(sluice::Context& ctx, Direction dir, sluice::Chunk&) override {
    if (dir == Direction::upstream && !to_.empty()) {
      ctx.set_upstream(to_);
      ctx.connect_upstream();
      to_.clear();
    }
    return sluice::Verdict::pass;
  }

 private:
  std::string to_;
};
class DeferFactory final : public sluice::MiddlewareFactory {
 public:
  explicit DeferFactory(std::string to) : to_(std::move(to)) {}
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<Defer>(to_); }

 private:
  std::string to_;
};

struct Fixture {
  Types types;
  fs::path dir;
  Fixture() {
    sluice::builtin::register_capture(types);
    types.add_middleware("defer", "defers the connect", [](sluice::Options& o, sluice::Services&) {
      return std::make_unique<DeferFactory>(o.get<std::string>("to", ""));
    });
    static int n = 0;
    dir = fs::temp_directory_path() /
          ("sluice-capture-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Fixture() { fs::remove_all(dir); }
  fs::path file() const { return dir / "capture.pcap"; }
  json config(json options = json::object()) const {
    options["type"] = "capture";
    if (!options.contains("path")) options["path"] = file().string();
    return json::array({options});
  }
  pcap_reader::File read(const fs::path& p) const {
    return pcap_reader::parse(pcap_reader::read(p));
  }
  std::vector<fs::path> files() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) ^ (i >> 9));
  return s;
}

// The ConfigError of building a chain, or "" if it builds.
std::string config_error(const Types& types, const json& middlewares) {
  try {
    Chain c(types, middlewares);
  } catch (const sluice::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(capture, Fixture)

BOOST_AUTO_TEST_CASE(a_channel_becomes_one_tcp_conversation) {
  Chain c(types, config());
  BOOST_TEST(fs::file_size(file()) == 24u);  // the header, written when the chain starts
  const auto before = std::chrono::system_clock::now();
  {
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    h.feed(Direction::upstream, "hello");
    BOOST_TEST(h.take(Direction::upstream) == "hello");  // bytes pass unchanged
    h.advance(250ms);
    h.feed(Direction::downstream, "world!");
    BOOST_TEST(h.take(Direction::downstream) == "world!");
    h.advance(1250ms);
    h.finish(Direction::upstream);
    h.finish(Direction::downstream);
    h.shut("client closed");
  }
  const auto after = std::chrono::system_clock::now();
  const auto f = read(file());
  // SYN, SYN-ACK, ACK, data, data, FIN + ACK, FIN + ACK.
  BOOST_REQUIRE(f.packets.size() == 9u);
  const auto& syn = f.packets[0];
  BOOST_TEST(syn.flags == flag::syn);
  BOOST_TEST(syn.src == "10.0.0.1");
  BOOST_TEST(syn.sport == 40000);
  BOOST_TEST(syn.dst == "192.0.2.7");
  BOOST_TEST(syn.dport == 443);
  const auto& up = f.packets[3];
  const auto& down = f.packets[4];
  BOOST_TEST(up.payload == "hello");
  BOOST_TEST(up.sport == 40000);
  BOOST_TEST(up.seq == syn.seq + 1);
  BOOST_TEST(down.payload == "world!");
  BOOST_TEST(down.sport == 443);
  BOOST_TEST(down.ack == up.seq + 5);
  BOOST_TEST(f.packets[5].flags == (flag::fin | flag::ack));
  BOOST_TEST(f.packets[5].sport == 40000);
  BOOST_TEST(f.packets[7].flags == (flag::fin | flag::ack));
  BOOST_TEST(f.packets[7].sport == 443);
  for (const auto& p : f.packets) {
    BOOST_TEST(p.ip_checksum_ok);
    BOOST_TEST(p.tcp_checksum_ok);
  }
  // Times: the system clock at open, then the channel's (fake) clock.
  const auto micros = [](auto t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  };
  BOOST_TEST(syn.micros() >= micros(before));
  BOOST_TEST(syn.micros() <= micros(after));
  BOOST_TEST(up.micros() == syn.micros());
  BOOST_TEST(down.micros() - syn.micros() == 250000);
  BOOST_TEST(f.packets[5].micros() - syn.micros() == 1500000);
}

BOOST_AUTO_TEST_CASE(ipv6_channel) {
  Chain c(types, config());
  {
    Harness h(c, "[::1]:50000", "[2001:db8::7]:8443");
    h.feed(Direction::upstream, "six");
    h.feed(Direction::downstream, "v6!");
  }
  const auto f = read(file());
  BOOST_REQUIRE(f.packets.size() >= 5u);
  BOOST_TEST(f.packets[0].v6);
  BOOST_TEST(f.packets[0].src == "::1");
  BOOST_TEST(f.packets[0].dst == "2001:db8::7");
  BOOST_TEST(f.packets[3].payload == "six");
  BOOST_TEST(f.packets[4].payload == "v6!");
  BOOST_TEST(f.packets[4].tcp_checksum_ok);
}

BOOST_AUTO_TEST_CASE(packets_before_the_connect_wait_for_the_connected_address) {
  Chain c(types, json::array({{{"type", "defer"}, {"to", "198.51.100.9:8443"}},
                              {{"type", "capture"}, {"path", file().string()}}}));
  {
    Harness h(c, "10.0.0.1:40000", "example.org:443");
    BOOST_TEST(!h.connected());
    h.feed(Direction::upstream, "before connect");
    BOOST_TEST(h.connected());
    h.feed(Direction::upstream, "after");
    h.shut("client closed");
  }
  const auto f = read(file());
  BOOST_REQUIRE(f.packets.size() >= 5u);
  for (const auto& p : f.packets) {
    const bool from_client = p.sport == 40000;
    BOOST_TEST((from_client ? p.dst : p.src) == "198.51.100.9");
    BOOST_TEST((from_client ? p.dport : p.sport) == 8443);
  }
  BOOST_TEST(f.packets[3].payload == "before connect");
  BOOST_TEST(f.packets[4].payload == "after");
}

BOOST_AUTO_TEST_CASE(never_connected_uses_the_configured_target) {
  {
    Chain c(types,
            json::array({{{"type", "defer"}}, {{"type", "capture"}, {"path", file().string()}}}));
    Harness h(c, "10.0.0.1:40000", "203.0.113.5:80");
    h.feed(Direction::upstream, "GET /");
    h.shut("closed by middleware test");
  }
  {
    Chain c(types,
            json::array({{{"type", "defer"}}, {{"type", "capture"}, {"path", file().string()}}}));
    Harness h(c, "[::1]:40001", "example.org:443");  // a name: the unspecified address
    h.feed(Direction::upstream, "hi");
    h.shut("closed by middleware test");
  }
  const auto f = read(file());
  std::set<std::string> servers;
  for (const auto& p : f.packets)
    if (p.sport == 40000 || p.sport == 40001) servers.insert(p.dst + " " + std::to_string(p.dport));
  BOOST_TEST(servers.size() == 2u);
  BOOST_TEST(servers.count("203.0.113.5 80") == 1u);
  BOOST_TEST(servers.count(":: 443") == 1u);
  // Closed by a middleware before either side finished: FIN both ways.
  std::size_t fins = 0;
  for (const auto& p : f.packets) fins += (p.flags & flag::fin) ? 1 : 0;
  BOOST_TEST(fins == 4u);
}

BOOST_AUTO_TEST_CASE(a_long_wait_for_the_connect_is_bounded) {
  Chain c(types,
          json::array({{{"type", "defer"}}, {{"type", "capture"}, {"path", file().string()}}}));
  Harness h(c, "10.0.0.1:40000", "203.0.113.5:80");
  const std::string big = pattern(1100 * 1024, 1);
  h.feed(Direction::upstream, big);  // past 1 MiB: the configured target is used
  h.advance(1s);                     // and flushed by the timer
  const auto f = read(file());
  BOOST_REQUIRE(f.packets.size() > 3u);
  BOOST_TEST(f.packets[0].dst == "203.0.113.5");
  BOOST_TEST((pcap_reader::payload_by_port(f)[40000] == big));
}

BOOST_AUTO_TEST_CASE(reset_when_the_reason_is_a_failure) {
  struct Case {
    const char* reason;
    std::uint8_t flags;
    std::uint16_t from;
  };
  const Case cases[] = {
      {"client read failed: Connection reset by peer", flag::rst | flag::ack, 40000},
      {"upstream read failed: Connection reset by peer", flag::rst | flag::ack, 443},
      {"write to upstream failed: Broken pipe", flag::rst | flag::ack, 443},
      {"middleware x threw in on_data: boom", flag::rst | flag::ack, 40000},
      {"upstream 192.0.2.7:443: connect timed out after 5s", flag::rst | flag::ack, 443},
      {"idle timeout (15m)", flag::ack, 40000},  // FIN-ACK/ACK each way; the client's ACK last
  };
  for (const Case& k : cases) {
    BOOST_TEST_CONTEXT(k.reason) {
      fs::remove(file());
      Chain c(types, config());
      {
        Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
        h.feed(Direction::upstream, "x");
        h.shut(k.reason);
      }
      const auto f = read(file());
      BOOST_REQUIRE(!f.packets.empty());
      BOOST_TEST(f.packets.back().flags == k.flags);
      BOOST_TEST(f.packets.back().sport == k.from);
      std::size_t fins = 0, resets = 0;
      for (const auto& p : f.packets) {
        fins += (p.flags & flag::fin) ? 1 : 0;
        resets += (p.flags & flag::rst) ? 1 : 0;
      }
      BOOST_TEST(fins == (k.flags & flag::rst ? 0u : 2u));
      BOOST_TEST(resets == (k.flags & flag::rst ? 1u : 0u));
    }
  }
}

BOOST_AUTO_TEST_CASE(flushed_about_every_second_and_at_close) {
  Chain c(types, config());
  Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
  h.feed(Direction::upstream, "waiting");
  BOOST_TEST(fs::file_size(file()) == 24u);  // buffered
  h.advance(999ms);
  BOOST_TEST(fs::file_size(file()) == 24u);
  h.advance(1ms);
  BOOST_TEST(read(file()).packets.size() == 4u);
  BOOST_TEST(h.pending_timers() == 0u);  // no timer while nothing waits
  h.feed(Direction::downstream, "more");
  BOOST_TEST(h.pending_timers() == 1u);
  h.shut("client closed");
  BOOST_TEST(read(file()).packets.size() >= 5u);  // flushed at close, before the file closes
}

BOOST_AUTO_TEST_CASE(folder_gets_one_file_per_channel) {
  const fs::path folder = dir / "per-channel";
  Chain c(types, config({{"path", folder.string() + "/"}}));
  BOOST_TEST(fs::is_directory(folder));  // created when the chain starts
  {
    Harness a(c, "10.0.0.1:40000", "192.0.2.7:443");
    a.feed(Direction::upstream, "a");
  }
  // The harness gives every channel id 1: the open times (in ms) keep the names apart.
  std::this_thread::sleep_for(5ms);
  {
    Harness b(c, "10.0.0.2:40000", "192.0.2.7:443");
    b.feed(Direction::upstream, "b");
  }
  std::vector<fs::path> names;
  for (const auto& e : fs::directory_iterator(folder)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  BOOST_REQUIRE(names.size() == 2u);
  // 20250102T030405.678Z_test_ch1.pcap: the harness' listener is "test", its channel id 1.
  for (const auto& n : names) {
    const std::string s = n.string();
    BOOST_TEST(s.size() == std::string("20250102T030405.678Z_test_ch1.pcap").size());
    BOOST_TEST(s.substr(8, 1) == "T");
    BOOST_TEST(s.substr(19) == "Z_test_ch1.pcap");
  }
  BOOST_TEST(names[0] < names[1]);
  const auto first = read(folder / names[0]);
  const auto second = read(folder / names[1]);
  BOOST_TEST(first.packets.at(3).payload == "a");
  BOOST_TEST(second.packets.at(3).payload == "b");
  // An existing folder works without a trailing slash.
  BOOST_TEST(config_error(types, config({{"path", folder.string()}})) == "");
}

BOOST_AUTO_TEST_CASE(a_name_clash_in_the_folder_takes_the_next_suffix) {
  // As two sluice processes sharing a folder would: channels with the same id opened in the same
  // millisecond. Pairs opened back to back nearly always clash; every channel is still captured.
  constexpr int kPairs = 20;
  int suffixed = 0;
  for (int i = 0; i < kPairs; ++i) {
    const fs::path folder = dir / ("shared" + std::to_string(i));
    Chain c(types, config({{"path", folder.string() + "/"}}));
    {
      Harness a(c, "10.0.0.1:40000", "192.0.2.7:443");
      Harness b(c, "10.0.0.2:40000", "192.0.2.7:443");
      a.feed(Direction::upstream, "a");
      b.feed(Direction::upstream, "b");
      BOOST_TEST(a.logs.empty());
      BOOST_TEST(b.logs.empty());
    }
    std::vector<fs::path> names;
    for (const auto& e : fs::directory_iterator(folder)) names.push_back(e.path().filename());
    BOOST_REQUIRE(names.size() == 2u);
    // "X-2.pcap" sorts before "X.pcap".
    std::sort(names.begin(), names.end());
    const std::string first = names[0].string();
    if (first.ends_with("_ch1-2.pcap")) {
      ++suffixed;
      BOOST_TEST(names[1].string() == first.substr(0, first.size() - 7) + ".pcap");
      BOOST_TEST(read(folder / names[1]).packets.at(3).payload == "a");
      BOOST_TEST(read(folder / names[0]).packets.at(3).payload == "b");
    }
  }
  BOOST_TEST(suffixed > 0);
}

BOOST_AUTO_TEST_CASE(rotation_keeps_files_under_the_limit) {
  Chain c(types, config({{"max_file_bytes", "64KiB"}}));
  const std::string up = pattern(300000, 2), down = pattern(100000, 3);
  {
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    for (std::size_t at = 0; at < up.size(); at += 30000) {
      h.feed(Direction::upstream, up.substr(at, 30000));
      if (at < down.size()) h.feed(Direction::downstream, down.substr(at, 30000));
    }
    h.finish(Direction::upstream);
  }
  const auto names = files();
  BOOST_REQUIRE(names.size() >= 6u);
  BOOST_TEST(names[0].filename() == "capture.pcap");
  for (std::size_t i = 1; i < names.size(); ++i) {
    char expected[48];
    std::snprintf(expected, sizeof expected, "capture_%06zu.pcap", i);
    BOOST_TEST(names[i].filename() == expected);
  }
  std::map<std::uint16_t, std::string> payload;
  for (const auto& n : names) {
    BOOST_TEST(fs::file_size(n) <= 65536u);
    const auto f = read(n);  // each a whole pcap file
    BOOST_TEST(!f.packets.empty());
    for (auto& [port, bytes] : pcap_reader::payload_by_port(f)) payload[port] += bytes;
  }
  BOOST_TEST((payload[40000] == up));
  BOOST_TEST((payload[443] == down));
}

// A config started on the same file (a reload, refused later or not) leaves the running one's
// limit alone: each writer's records are measured against its own max_file_bytes.
BOOST_AUTO_TEST_CASE(a_second_config_on_the_file_keeps_the_first_ones_limit) {
  {
    Chain limited(types, config({{"max_file_bytes", "64KiB"}}));
    Harness h(limited, "10.0.0.1:40000", "192.0.2.7:443");
    h.feed(Direction::upstream, pattern(30000, 8));
    Chain unlimited(types, config({{"max_file_bytes", 0}}));
    h.feed(Direction::upstream, pattern(70000, 9));
  }
  const auto names = files();
  BOOST_TEST(names.size() >= 2u);  // 100,000 bytes do not fit into one 64 KiB file
  for (const auto& n : names) BOOST_TEST(fs::file_size(n) <= 65536u);
}

BOOST_AUTO_TEST_CASE(rotation_after_a_restart_never_overwrites) {
  {
    Chain c(types, config({{"max_file_bytes", "64KiB"}}));
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    h.feed(Direction::upstream, pattern(100000, 4));
  }
  const auto first = files();
  BOOST_REQUIRE(first.size() == 2u);
  const std::string kept = pcap_reader::read(first[1]);
  {
    Chain c(types, config({{"max_file_bytes", "64KiB"}}));
    Harness h(c, "10.0.0.1:40001", "192.0.2.7:443");
    h.feed(Direction::upstream, pattern(100000, 5));
  }
  const auto second = files();
  BOOST_REQUIRE(second.size() >= 3u);
  BOOST_TEST(second[2].filename() == "capture_000002.pcap");
  BOOST_TEST((pcap_reader::read(first[1]).substr(0, kept.size()) == kept));
}

// A folder the process may write into but not list (a drop box): the newest rotated file cannot
// be found, and the capture says where it appends instead of silently starting over at `path`.
// Run in a child that drops root, which could list the folder anyway.
BOOST_AUTO_TEST_CASE(an_unlistable_folder_is_warned_about) {
  const fs::path box = dir / "box";
  fs::create_directory(box);
  std::ofstream(box / "capture_000001.pcap").put('x');
  BOOST_REQUIRE(::chmod(dir.c_str(), 0755) == 0 && ::chmod(box.c_str(), 0333) == 0);
  struct Listable {  // again, whatever fails below, or ~Fixture could not remove it as non-root
    fs::path folder;
    ~Listable() { ::chmod(folder.c_str(), 0755); }
  } listable{box};
  const std::string path = (box / "capture.pcap").string();
  const std::string expected = "cannot list \"" + box.string() +
                               "\": Permission denied; appending to \"" + path +
                               "\", which may not be the newest file of this capture";
  constexpr int kCannotHide = 77;  // this process can list the folder whatever its mode
  std::fflush(stdout);
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    // Never back into Boost.Test in the child: it would run the remaining tests here too.
    std::signal(SIGSEGV, SIG_DFL);
    std::signal(SIGABRT, SIG_DFL);
    int status = 1;
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
         ::setresuid(65534, 65534, 65534) != 0))
      ::_exit(kCannotHide);
    if (DIR* listing = ::opendir(box.c_str())) {  // CAP_DAC_READ_SEARCH
      ::closedir(listing);
      ::_exit(kCannotHide);
    }
    try {
      Chain c(types, config({{"path", path}}));
      if (c.logs.size() == 1 && c.logs.front() == expected) status = 0;
      for (const auto& line : c.logs)
        if (status != 0) std::printf("child log: %s\n", line.c_str());
    } catch (const std::exception& e) {
      std::printf("child: %s\n", e.what());
      status = 2;
    } catch (...) {
      status = 2;
    }
    std::fflush(stdout);
    ::_exit(status);
  }
  int status = -1;
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == kCannotHide) {
    BOOST_TEST_MESSAGE("skipped: this process lists a -wx folder anyway and cannot drop that");
    return;
  }
  BOOST_TEST(WEXITSTATUS(status) == 0);  // 1: other logs (printed above), 2: refused
  BOOST_TEST(fs::exists(path));
}

// After a restart the capture goes on in its newest file, not in the first (the oldest): the
// files' name order stays the order they were written in.
BOOST_AUTO_TEST_CASE(a_restart_appends_to_the_newest_rotated_file) {
  auto run = [&](std::uint16_t port, std::size_t bytes, std::uint64_t seed) {
    Chain c(types, config({{"max_file_bytes", "64KiB"}}));
    Harness h(c, "10.0.0.1:" + std::to_string(port), "192.0.2.7:443");
    h.feed(Direction::upstream, pattern(bytes, seed));
  };
  run(40000, 100000, 6);
  const auto before = files();
  BOOST_REQUIRE(before.size() == 2u);
  const auto first_size = fs::file_size(before[0]);
  const auto newest_size = fs::file_size(before[1]);
  BOOST_REQUIRE(newest_size < 60000u);  // room for the next run's first bytes

  run(40001, 1000, 7);
  BOOST_TEST(files().size() == 2u);
  BOOST_TEST(fs::file_size(before[0]) == first_size);
  BOOST_TEST(fs::file_size(before[1]) > newest_size);
  const auto in_newest = pcap_reader::payload_by_port(read(before[1]));
  BOOST_TEST((in_newest.count(40001) && in_newest.at(40001) == pattern(1000, 7)));
  BOOST_TEST(!pcap_reader::payload_by_port(read(before[0])).count(40001));
}

BOOST_AUTO_TEST_CASE(snaplen_keeps_the_first_bytes_of_each_packet) {
  Chain c(types, config({{"snaplen", 4}}));
  {
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    h.feed(Direction::upstream, "0123456789");
    h.feed(Direction::downstream, "ab");
  }
  const auto f = read(file());
  BOOST_REQUIRE(f.packets.size() >= 5u);
  BOOST_TEST(f.packets[3].payload == "0123");
  BOOST_TEST(f.packets[3].payload_size == 10u);
  BOOST_TEST(f.packets[4].payload == "ab");
  BOOST_TEST(f.packets[4].ack == f.packets[3].seq + 10);
}

BOOST_AUTO_TEST_CASE(appends_to_an_existing_capture_and_shares_one_file) {
  {
    Chain c(types, config());
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    h.feed(Direction::upstream, "first run");
  }
  {
    // Two chains at once (two listeners, or a reload): one writer, records stay whole.
    Chain a(types, config());
    Chain b(types, config());
    Harness ha(a, "10.0.0.1:40001", "192.0.2.7:443");
    Harness hb(b, "10.0.0.1:40002", "192.0.2.7:443");
    ha.feed(Direction::upstream, "from a");
    hb.feed(Direction::upstream, "from b");
  }
  auto payload = pcap_reader::payload_by_port(read(file()));
  BOOST_TEST(payload[40000] == "first run");
  BOOST_TEST(payload[40001] == "from a");
  BOOST_TEST(payload[40002] == "from b");
}

BOOST_AUTO_TEST_CASE(a_partial_last_record_is_cut_off_before_appending) {
  {
    Chain c(types, config());
    Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
    h.feed(Direction::upstream, "first run");
  }
  // A sluice killed while writing: the start of a record, cut short.
  const auto whole = fs::file_size(file());
  {
    std::ofstream out(file(), std::ios::binary | std::ios::app);
    out << std::string(16 + 10, '\x7f');
  }
  {
    Chain c(types, config());
    BOOST_TEST(c.logs.size() == 1u);
    BOOST_TEST((c.logs.empty() ? "" : c.logs.front()) ==
               "\"" + file().string() + "\": cut a partial last record (26 bytes) off before " +
                   "appending");
    Harness h(c, "10.0.0.1:40001", "192.0.2.7:443");
    h.feed(Direction::upstream, "second run");
  }
  BOOST_TEST(fs::file_size(file()) > whole);
  auto payload = pcap_reader::payload_by_port(read(file()));
  BOOST_TEST(payload[40000] == "first run");
  BOOST_TEST(payload[40001] == "second run");
}

BOOST_AUTO_TEST_CASE(channels_on_many_threads_write_whole_records) {
  Chain c(types, config());
  constexpr int kThreads = 4, kChunks = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, t] {
      Harness h(c, "10.0.0.1:" + std::to_string(41000 + t), "192.0.2.7:443");
      for (int i = 0; i < kChunks; ++i) {
        h.feed(Direction::upstream, pattern(3000, static_cast<unsigned>(t * 1000 + i)));
        h.advance(1s);  // flushes from this thread while the others append
      }
    });
  }
  for (auto& th : threads) th.join();
  auto payload = pcap_reader::payload_by_port(read(file()));
  for (int t = 0; t < kThreads; ++t) {
    std::string expected;
    for (int i = 0; i < kChunks; ++i)
      expected += pattern(3000, static_cast<unsigned>(t * 1000 + i));
    BOOST_TEST((payload[static_cast<std::uint16_t>(41000 + t)] == expected));
  }
}

BOOST_AUTO_TEST_CASE(a_write_error_is_logged_once_and_the_channel_goes_on) {
  Chain c(types, config());
  // The file may not grow past 4 KiB: writes fail with EFBIG (SIGXFSZ ignored).
  rlimit saved{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  BOOST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::vector<std::string> logs;
  {
    Harness a(c, "10.0.0.1:40000", "192.0.2.7:443");
    Harness b(c, "10.0.0.1:40001", "192.0.2.7:443");
    const std::string big = pattern(300 * 1024, 6);
    a.feed(Direction::upstream, big);  // past the 256 KiB write threshold: written now, fails
    BOOST_TEST(a.take(Direction::upstream) == big);
    b.feed(Direction::upstream, "still flowing");
    BOOST_TEST(b.take(Direction::upstream) == "still flowing");
    a.advance(2s);
    b.advance(2s);
    BOOST_TEST(!a.closed());
    BOOST_TEST(!b.closed());
    a.shut("client closed");
    b.shut("client closed");
    logs = a.logs;
    logs.insert(logs.end(), b.logs.begin(), b.logs.end());
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);
  BOOST_REQUIRE(logs.size() == 1u);
  BOOST_TEST(logs[0].find("capture: capture file") == 0u);
  BOOST_TEST(logs[0].find("write failed: File too large; capturing into it stops") !=
             std::string::npos);
  // What is in the file is still a whole capture (the partial write was cut off).
  BOOST_TEST(read(file()).packets.size() == 0u);
  // A later config load opens the file afresh.
  Chain again(types, config());
  {
    Harness h(again, "10.0.0.1:40002", "192.0.2.7:443");
    h.feed(Direction::upstream, "again");
  }
  BOOST_TEST(pcap_reader::payload_by_port(read(file()))[40002] == "again");
}

BOOST_AUTO_TEST_CASE(a_folder_that_goes_away_is_logged_per_channel) {
  const fs::path folder = dir / "gone";
  Chain c(types, config({{"path", folder.string() + "/"}}));
  fs::remove_all(folder);
  Harness h(c, "10.0.0.1:40000", "192.0.2.7:443");
  h.feed(Direction::upstream, "x");
  h.feed(Direction::upstream, "y");
  BOOST_TEST(h.take(Direction::upstream) == "xy");
  BOOST_TEST(!h.closed());
  BOOST_REQUIRE(h.logs.size() == 1u);
  BOOST_TEST(h.logs[0].find("cannot open") != std::string::npos);
  BOOST_TEST(h.logs[0].find("this channel is not captured") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_option) {
  auto error = [&](json options) { return config_error(types, config(std::move(options))); };
  BOOST_TEST(config_error(types, json::array({{{"type", "capture"}}})) ==
             "/middlewares/0/path: missing (required)");
  BOOST_TEST(error({{"path", ""}}) ==
             "/middlewares/0/path: expected a file or folder path, got \"\"");
  BOOST_TEST(error({{"path", 3}}) == "/middlewares/0/path: expected a string, got an integer");
  // Under a regular file: unwritable even for root.
  { std::ofstream(dir / "plain") << "not a folder"; }
  const std::string under_file = (dir / "plain" / "x.pcap").string();
  BOOST_TEST(error({{"path", under_file}}) == "/middlewares/0/path: cannot open \"" + under_file +
                                                  "\" for appending: Not a directory");
  const std::string folder_under_file = (dir / "plain" / "sub").string() + "/";
  BOOST_TEST(error({{"path", folder_under_file}})
                 .find("/middlewares/0/path: cannot create the "
                       "folder") == 0u);
  BOOST_TEST(error({{"path", (dir / "plain").string()}})
                 .find("/middlewares/0/path: \"" + (dir / "plain").string() +
                       "\" exists and is not a capture of this kind") == 0u);
  BOOST_TEST(error({{"max_file_bytes", 1000}}) ==
             "/middlewares/0/max_file_bytes: expected 0 (no limit) or at least 64KiB, got 1000 "
             "bytes");
  BOOST_TEST(error({{"max_file_bytes", "lots"}})
                 .find("/middlewares/0/max_file_bytes: expected a "
                       "size") == 0u);
  BOOST_TEST(error({{"snaplen", -1}}).find("/middlewares/0/snaplen: expected a size") == 0u);
  BOOST_TEST(error({{"snapln", 1}}) == "/middlewares/0/snapln: unknown key");
  BOOST_TEST(error({{"max_file_bytes", 0}, {"snaplen", "1KiB"}}) == "");
}

BOOST_AUTO_TEST_SUITE_END()
