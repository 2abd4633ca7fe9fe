// tee through the harness, with real mirror sockets on 127.0.0.1: the middleware's connections
// run on h.io(), the test's mirror servers on an io_context of their own; both are driven by
// bounded poll loops.
#define BOOST_TEST_MODULE tee
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "sluice/testing.hpp"
#include "tee/tee.hpp"

using sluice::Direction;
using namespace sluice::testing;
using namespace std::chrono_literals;
using nlohmann::json;
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// A mirror on 127.0.0.1:<free port>. Every accepted connection records what it reads and whether
// its stream ended (EOF or error). A mirror made with reads=false accepts but never reads until
// start_reading().
class Mirror {
 public:
  struct Connection {
    explicit Connection(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::string got;
    bool ended = false;
    bool reading = false;
    char buf[64 * 1024];
  };

  explicit Mirror(asio::io_context& io, bool reads = true, int receive_buffer = 0)
      : io_(io), acceptor_(io), reads_(reads) {
    acceptor_.open(tcp::v4());
    if (receive_buffer)
      acceptor_.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    accept();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  void start_reading() {
    reads_ = true;
    for (auto& c : connections) read(c);
  }
  std::vector<std::shared_ptr<Connection>> connections;

 private:
  void accept() {
    auto c = std::make_shared<Connection>(io_);
    acceptor_.async_accept(c->socket, [this, c](error_code ec) {
      if (ec) return;
      connections.push_back(c);
      if (reads_) read(c);
      accept();
    });
  }
  static void read(const std::shared_ptr<Connection>& c) {
    if (c->reading) return;
    c->reading = true;
    c->socket.async_read_some(asio::buffer(c->buf), [c](error_code ec, std::size_t n) {
      c->reading = false;
      c->got.append(c->buf, n);
      if (ec) {
        c->ended = true;
        return;
      }
      read(c);
    });
  }
  asio::io_context& io_;
  tcp::acceptor acceptor_;
  bool reads_;
};

// A port that was free a moment ago: nothing listens there, so a connect is refused.
std::uint16_t closed_port() {
  asio::io_context io;
  tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::string pattern(std::size_t n, std::size_t offset) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((offset + i) * 131 % 251);
  return s;
}

std::size_t count_logs(const Harness& h, std::string_view needle) {
  std::size_t n = 0;
  for (const auto& line : h.logs) n += line.find(needle) != std::string::npos;
  return n;
}

std::string find_log(const Harness& h, std::string_view needle) {
  for (const auto& line : h.logs)
    if (line.find(needle) != std::string::npos) return line;
  return "";
}

struct Fixture {
  Types types;
  asio::io_context peers;  // the test's mirror servers
  Fixture() { sluice::builtin::register_tee(types); }

  Chain chain(json options) {
    options["type"] = "tee";
    return Chain(types, json::array({options}));
  }

  // Runs the middleware's loop and the mirrors' until `done`, for at most `limit`.
  bool run_until(Harness& h, const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      h.io().restart();
      peers.restart();
      if (h.io().poll() + peers.poll() == 0) std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  void run_for(Harness& h, std::chrono::milliseconds d) {
    run_until(
        h, [] { return false; }, d);
  }

  std::string config_error(json options) {
    try {
      chain(std::move(options));
    } catch (const sluice::ConfigError& e) {
      return e.what();
    }
    return "no error";
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(tee_middleware, Fixture)

BOOST_AUTO_TEST_CASE(copies_the_client_bytes_in_order_and_forwards_the_half_close) {
  Mirror m(peers);
  auto c = chain({{"mirrors", {m.address()}}});
  Harness h(c);
  // Fed before the mirror connection is up: queued, then copied in order.
  h.feed(Direction::upstream, "hello ");
  h.feed(Direction::downstream, "reply");
  h.feed(Direction::upstream, "world");
  BOOST_TEST(h.take(Direction::upstream) == "hello world");
  BOOST_TEST(h.take(Direction::downstream) == "reply");
  BOOST_REQUIRE(run_until(
      h, [&] { return m.connections.size() == 1; }, 5s));
  auto& mc = *m.connections[0];
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.got.size() >= 11; }, 5s));
  BOOST_TEST(mc.got == "hello world");
  BOOST_TEST(!mc.ended);
  h.feed(Direction::upstream, "!");
  h.finish(Direction::upstream);
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.ended; }, 5s));
  BOOST_TEST(mc.got == "hello world!");
  BOOST_TEST(h.take(Direction::upstream) == "!");
  BOOST_TEST(!h.closed());
  h.shut("done");
  BOOST_TEST(count_logs(h, "mirror " + m.address() + ": 12 bytes copied, 0 dropped") == 1);
}

BOOST_AUTO_TEST_CASE(direction_downstream_copies_the_server_bytes) {
  Mirror m(peers);
  auto c = chain({{"mirrors", {m.address()}}, {"direction", "downstream"}});
  Harness h(c);
  h.feed(Direction::upstream, "request");
  h.feed(Direction::downstream, "response");
  h.finish(Direction::upstream);  // not a copied direction: no FIN for the mirror yet
  BOOST_REQUIRE(run_until(
      h, [&] { return !m.connections.empty(); }, 5s));
  auto& mc = *m.connections[0];
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.got.size() >= 8; }, 5s));
  run_for(h, 50ms);
  BOOST_TEST(mc.got == "response");
  BOOST_TEST(!mc.ended);
  h.finish(Direction::downstream);
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.ended; }, 5s));
  BOOST_TEST(mc.got == "response");
  BOOST_TEST(h.take(Direction::upstream) == "request");
  BOOST_TEST(h.take(Direction::downstream) == "response");
}

BOOST_AUTO_TEST_CASE(direction_both_interleaves_as_the_bytes_passed) {
  Mirror m(peers);
  auto c = chain({{"mirrors", {m.address()}}, {"direction", "both"}});
  Harness h(c);
  h.feed(Direction::upstream, "1-up ");
  h.feed(Direction::downstream, "2-down ");
  BOOST_REQUIRE(run_until(
      h, [&] { return !m.connections.empty(); }, 5s));
  auto& mc = *m.connections[0];
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.got.size() >= 12; }, 5s));
  h.feed(Direction::downstream, "3-down ");
  h.feed(Direction::upstream, "4-up");
  h.finish(Direction::upstream);
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.got.size() >= 23; }, 5s));
  run_for(h, 50ms);
  BOOST_TEST(!mc.ended);  // the FIN waits for both directions to end
  h.finish(Direction::downstream);
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.ended; }, 5s));
  BOOST_TEST(mc.got == "1-up 2-down 3-down 4-up");
}

BOOST_AUTO_TEST_CASE(every_mirror_gets_a_copy_including_one_named_by_host_name) {
  Mirror a(peers), b(peers);
  auto c = chain({{"mirrors", {a.address(), "localhost:" + std::to_string(b.port())}}});
  Harness h(c);
  std::string sent;
  for (int i = 0; i < 20; ++i) {
    const std::string piece = pattern(1000 + i * 37, sent.size());
    h.feed(Direction::upstream, piece);
    sent += piece;
    run_for(h, 1ms);
  }
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == sent);
  auto done = [](Mirror& m) { return m.connections.size() == 1 && m.connections[0]->ended; };
  BOOST_REQUIRE(run_until(
      h, [&] { return done(a) && done(b); }, 10s));
  BOOST_TEST(a.connections[0]->got == sent);
  BOOST_TEST(b.connections[0]->got == sent);
}

BOOST_AUTO_TEST_CASE(a_mirror_that_does_not_read_loses_its_copy_not_the_channel) {
  Mirror slow(peers, /*reads=*/false, /*receive_buffer=*/4096);
  auto c = chain({{"mirrors", {slow.address()}}, {"max_buffer", "256KiB"}});
  Harness h(c);
  BOOST_REQUIRE(run_until(
      h, [&] { return !slow.connections.empty(); }, 5s));
  const std::string_view warning = "more than max_buffer (262144 bytes) queued";
  std::size_t fed = 0;
  bool channel_intact = true;
  // Socket buffers take a few MiB before the queue grows: feed until the drop, bounded.
  while (count_logs(h, warning) == 0 && fed < (256u << 20)) {
    const std::string piece = pattern(64 * 1024, fed);
    h.feed(Direction::upstream, piece);
    fed += piece.size();
    channel_intact = channel_intact && h.take(Direction::upstream) == piece;
    h.io().restart();
    h.io().poll();
  }
  BOOST_TEST(channel_intact);
  BOOST_REQUIRE(count_logs(h, warning) == 1);
  BOOST_TEST_MESSAGE(find_log(h, warning));
  // The channel goes on; the mirror's copy stays dropped, and the warning is not repeated.
  for (int i = 0; i < 10; ++i) {
    const std::string piece = pattern(64 * 1024, fed);
    h.feed(Direction::upstream, piece);
    fed += piece.size();
    BOOST_TEST(h.take(Direction::upstream) == piece);
  }
  BOOST_TEST(!h.closed());
  BOOST_TEST(count_logs(h, warning) == 1);
  // The mirror connection was closed: once it reads, its stream ends, short of what was sent.
  slow.start_reading();
  auto& mc = *slow.connections[0];
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.ended; }, 10s));
  BOOST_TEST(mc.got.size() < fed);
  BOOST_TEST(mc.got == pattern(mc.got.size(), 0));  // what it got is a prefix, without holes
  h.shut("done");
  // Every byte is counted: copied (and received by the mirror) or dropped.
  const std::string summary = find_log(h, "bytes copied");
  BOOST_TEST(summary.find("mirror " + slow.address() + ": " + std::to_string(mc.got.size()) +
                          " bytes copied, " + std::to_string(fed - mc.got.size()) +
                          " dropped (over max_buffer)") != std::string::npos,
             summary);
}

BOOST_AUTO_TEST_CASE(a_refused_mirror_is_logged_once_and_the_channel_is_unaffected) {
  const std::string refused = "127.0.0.1:" + std::to_string(closed_port());
  Mirror good(peers);
  auto c = chain({{"mirrors", {refused, good.address()}}});
  Harness h(c);
  h.feed(Direction::upstream, "abc");
  BOOST_REQUIRE(run_until(
      h, [&] { return count_logs(h, "connect failed") > 0; }, 5s));
  BOOST_TEST(count_logs(h, "mirror " + refused + ": connect failed: Connection refused") == 1);
  h.feed(Direction::upstream, "def");
  h.feed(Direction::downstream, "xyz");
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "abcdef");
  BOOST_TEST(h.take(Direction::downstream) == "xyz");
  BOOST_TEST(!h.closed());
  // The other mirror is not affected either.
  BOOST_REQUIRE(run_until(
      h, [&] { return !good.connections.empty(); }, 5s));
  BOOST_REQUIRE(run_until(
      h, [&] { return good.connections[0]->ended; }, 5s));
  BOOST_TEST(good.connections[0]->got == "abcdef");
  h.shut("done");
  BOOST_TEST(count_logs(h, "connect failed: ") == 1);
  BOOST_TEST(count_logs(h, "mirror " + refused + ": 0 bytes copied, 6 dropped (connect failed)") ==
             1);
  BOOST_TEST(count_logs(h, "mirror " + good.address() + ": 6 bytes copied, 0 dropped") == 1);
}

BOOST_AUTO_TEST_CASE(a_mirror_that_does_not_answer_the_connect_times_out) {
  // A listener with a full accept queue (backlog 0, one connection waiting) drops new SYNs:
  // a connect to it neither succeeds nor fails.
  tcp::acceptor full(peers, tcp::v4());
  full.bind({asio::ip::make_address("127.0.0.1"), 0});
  full.listen(0);
  tcp::socket waiting(peers);
  waiting.connect(full.local_endpoint());
  const std::string address = "127.0.0.1:" + std::to_string(full.local_endpoint().port());
  auto c = chain({{"mirrors", {address}}, {"connect_timeout", "200ms"}});
  Harness h(c);
  h.feed(Direction::upstream, "abc");
  const auto started = std::chrono::steady_clock::now();
  BOOST_REQUIRE(run_until(
      h, [&] { return count_logs(h, "connect timed out") > 0; }, 5s));
  BOOST_TEST((std::chrono::steady_clock::now() - started >= 150ms));
  BOOST_TEST(count_logs(h, "mirror " + address + ": connect timed out after 200ms") == 1);
  BOOST_TEST(h.take(Direction::upstream) == "abc");
  h.shut("done");
  BOOST_TEST(count_logs(h, "0 bytes copied, 3 dropped (connect timed out)") == 1);
}

BOOST_AUTO_TEST_CASE(copies_queued_at_the_close_are_flushed_within_linger) {
  Mirror m(peers);
  auto c = chain({{"mirrors", {m.address()}}, {"max_buffer", "4MiB"}});
  Harness h(c);
  const std::string sent = pattern(1 << 20, 0);
  h.feed(Direction::upstream, sent);
  h.shut("client closed");  // before the mirror connection is even up
  BOOST_TEST(count_logs(h, "0 bytes copied, 0 dropped, 1048576 queued (flushed for up to 1s)") ==
             1);
  BOOST_REQUIRE(run_until(
      h, [&] { return !m.connections.empty() && m.connections[0]->ended; }, 5s));
  BOOST_TEST(m.connections[0]->got.size() == sent.size());
  BOOST_TEST(m.connections[0]->got == sent);
}

BOOST_AUTO_TEST_CASE(linger_bounds_how_long_a_stuck_mirror_is_kept) {
  Mirror stuck(peers, /*reads=*/false, /*receive_buffer=*/4096);
  auto c = chain({{"mirrors", {stuck.address()}}, {"max_buffer", "64MiB"}, {"linger", "200ms"}});
  Harness h(c);
  const std::size_t total = 32u << 20;  // more than the socket buffers take
  for (std::size_t fed = 0; fed < total; fed += 1 << 20)
    h.feed(Direction::upstream, pattern(1 << 20, fed));
  BOOST_REQUIRE(run_until(
      h, [&] { return !stuck.connections.empty(); }, 5s));
  run_for(h, 100ms);
  h.shut("client closed");
  run_for(h, 500ms);  // the linger passes: the mirror connection is closed with copies unsent
  stuck.start_reading();
  auto& mc = *stuck.connections[0];
  BOOST_REQUIRE(run_until(
      h, [&] { return mc.ended; }, 10s));
  BOOST_TEST(mc.got.size() < total);
  BOOST_TEST(mc.got == pattern(mc.got.size(), 0));
}

BOOST_AUTO_TEST_CASE(linger_zero_closes_the_mirror_connections_with_the_channel) {
  Mirror m(peers);
  auto c = chain({{"mirrors", {m.address()}}, {"linger", 0}});
  Harness h(c);
  h.feed(Direction::upstream, "abc");
  h.shut("client closed");
  BOOST_TEST(count_logs(h, "0 bytes copied, 0 dropped, 3 queued (not sent: linger is 0)") == 1);
  run_for(h, 200ms);
  for (const auto& conn : m.connections) BOOST_TEST(conn->got == "");
}

BOOST_AUTO_TEST_CASE(bad_options_name_their_json_path) {
  BOOST_TEST(config_error(json::object()) == "/middlewares/0/mirrors: missing (required)");
  BOOST_TEST(config_error({{"mirrors", json::array()}}) ==
             "/middlewares/0/mirrors: expected at least one \"host:port\"");
  BOOST_TEST(config_error({{"mirrors", "127.0.0.1:9"}}).starts_with("/middlewares/0/mirrors: "));
  BOOST_TEST(config_error({{"mirrors", {"127.0.0.1:9", 9}}}) ==
             "/middlewares/0/mirrors/1: expected a string, got an integer");
  for (const char* bad : {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:80", "[::1:80", ":80",
                          "bad host!:80", "127.0.0.1:http"})
    BOOST_TEST(config_error({{"mirrors", {"127.0.0.1:9", bad}}})
                   .starts_with("/middlewares/0/mirrors/1: expected HOST:PORT"),
               bad);
  BOOST_TEST(config_error({{"mirrors", {"127.0.0.1:9", "127.0.0.1:9"}}}) ==
             "/middlewares/0/mirrors/1: \"127.0.0.1:9\" is listed twice");
  const json ok = {{"mirrors", {"127.0.0.1:9", "[::1]:9", "shadow.example:9"}}};
  auto with = [&](const char* key, json value) {
    json o = ok;
    o[key] = std::move(value);
    return config_error(o);
  };
  BOOST_TEST(config_error(ok) == "no error");
  BOOST_TEST(with("direction", "sideways") ==
             "/middlewares/0/direction: expected one of \"upstream\", \"downstream\", \"both\", "
             "got \"sideways\"");
  BOOST_TEST(with("max_buffer", 0) ==
             "/middlewares/0/max_buffer: expected a size of at least 1 byte");
  BOOST_TEST(with("max_buffer", "lots").starts_with("/middlewares/0/max_buffer: expected a size"));
  BOOST_TEST(with("connect_timeout", 0) ==
             "/middlewares/0/connect_timeout: expected a duration of at least 1ms");
  BOOST_TEST(with("connect_timeout", "soon")
                 .starts_with("/middlewares/0/connect_timeout: expected a duration"));
  BOOST_TEST(with("linger", -1).starts_with("/middlewares/0/linger: expected a duration"));
  BOOST_TEST(with("linger", 0) == "no error");
  BOOST_TEST(with("mirror", "x") == "/middlewares/0/mirror: unknown key");
}

BOOST_AUTO_TEST_SUITE_END()
