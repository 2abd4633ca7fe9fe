#include "replay.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <variant>
#include <vector>

#include "address.hpp"
#include "record/format/recording.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace rec = recording;
using asio::awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using SteadyClock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

constexpr int kMatch = 0, kDiffers = 1, kBadInput = 2;

// Exit status 2.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The client side of one recorded channel, and the answer it got.
struct Script {
  struct Step {
    bool shutdown = false;  // the client's half-close, else a chunk to send
    double at = 0;          // seconds since the channel opened
    std::string bytes;
    std::size_t answer_before = 0;  // recorded downstream bytes before this step
  };
  std::uint64_t channel = 0;
  double connected_at = 0;
  std::vector<Step> steps;
  std::string answer;         // the recorded downstream bytes
  bool answer_ended = false;  // the recorded upstream half-closed towards the client
  bool truncated = false;     // max_bytes cut the recording: compare only what was recorded
  std::size_t bytes_to_send = 0;
};

std::string list_ids(const std::vector<std::uint64_t>& ids) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(ids.size(), 20);
  for (std::size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  if (ids.size() > shown) out += ", ... (" + std::to_string(ids.size()) + " in all)";
  return out;
}

Script load_script(const std::filesystem::path& file, std::optional<std::uint64_t> wanted) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw BadInput(file.string() + ": cannot open: " + std::strerror(errno));
  Script s;
  std::vector<std::uint64_t> ids;  // in order of appearance
  std::set<std::uint64_t> seen;
  bool opened = false, finished = false;
  try {
    // Reading stops at the wanted channel's close: a last line cut short (sluice still writing)
    // or a bad line of another channel must not make a complete channel unreplayable.
    const auto each = [&](rec::Line&& line, std::size_t number) {
      if (seen.insert(line.channel).second) ids.push_back(line.channel);
      if (!wanted) wanted = line.channel;
      if (line.channel != *wanted) return true;
      const auto step = [&](bool shutdown, std::string bytes) {
        // Past the cut, even the client's half-close came after bytes nobody recorded.
        if (s.truncated) return;
        s.bytes_to_send += bytes.size();
        s.steps.push_back({shutdown, line.t, std::move(bytes), s.answer.size()});
      };
      std::visit(
          [&](auto& e) {
            using E = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<E, rec::Open>) {
              // Channel ids start again with every sluice process: a second open of this id in
              // a file that several runs appended to is another channel.
              if (opened) {
                finished = true;
                return;
              }
              opened = true;
              if (e.messages)
                throw BadInput(file.string() + ":" + std::to_string(number) + ": channel " +
                               std::to_string(line.channel) +
                               " was recorded after a framing layer (its data events are "
                               "messages, not stream bytes); record before the layer to replay");
            } else if constexpr (std::is_same_v<E, rec::Connected>) {
              s.connected_at = line.t;
            } else if constexpr (std::is_same_v<E, rec::Data>) {
              if (e.direction == Direction::upstream)
                step(false, std::move(e.bytes));
              else if (!s.truncated)
                s.answer += e.bytes;
            } else if constexpr (std::is_same_v<E, rec::End>) {
              if (e.direction == Direction::upstream)
                step(true, {});
              else
                s.answer_ended = true;
            } else if constexpr (std::is_same_v<E, rec::Truncated>) {
              s.truncated = true;
            } else {
              static_assert(std::is_same_v<E, rec::Close>);
              finished = true;
            }
          },
          line.event);
      return !finished;
    };
    const auto bad = [&](const rec::FormatError& e) {
      if (!wanted || !e.channel || *e.channel == *wanted) throw e;
    };
    rec::read_lines(in, each, bad);
  } catch (const rec::FormatError& e) {
    throw BadInput(file.string() + ": " + e.what());
  }
  if (ids.empty()) throw BadInput(file.string() + ": no recorded channel in the file");
  if (!seen.count(*wanted))
    throw BadInput(file.string() + ": no channel " + std::to_string(*wanted) +
                   " (channels in the file: " + list_ids(ids) + ")");
  s.channel = *wanted;
  if (s.truncated) s.answer_ended = false;
  return s;
}

// One replay on its own event loop.
class Session {
 public:
  Session(asio::io_context& io, const Script& script, const ReplayOptions& options)
      : script_(script),
        options_(options),
        socket_(io),
        progress_(io),
        sleep_(io),
        // Enough to show that the upstream said more than recorded; then it need not be read.
        cap_(script.answer.size() + 64 * 1024) {}

  awaitable<void> run(std::vector<tcp::endpoint> endpoints) {
    asio::steady_timer deadline(socket_.get_executor());
    deadline.expires_after(options_.timeout);
    auto connected =
        co_await (asio::async_connect(socket_, endpoints, kTuple) || deadline.async_wait(kTuple));
    if (connected.index() == 1) {
      problem_ = "cannot connect to " + options_.upstream + ": timed out after " +
                 std::to_string(options_.timeout.count()) + " ms";
      co_return;
    }
    if (auto ec = std::get<0>(std::get<0>(connected)); ec) {
      problem_ = "cannot connect to " + options_.upstream + ": " + ec.message();
      co_return;
    }
    connected_ = true;
    last_read_ = SteadyClock::now();
    co_await (read_answer() && drive());
  }

  bool connected() const { return connected_; }
  const std::string& answer() const { return got_; }
  bool upstream_closed() const { return upstream_closed_; }
  const std::string& upstream_error() const { return upstream_error_; }
  const std::string& problem() const { return problem_; }
  std::size_t sent() const { return sent_; }

 private:
  awaitable<void> read_answer() {
    std::array<char, 64 * 1024> buf;
    for (;;) {
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), kTuple);
      got_.append(buf.data(), n);
      if (n) last_read_ = SteadyClock::now();
      if (ec || got_.size() >= cap_) {
        // operation_aborted: drive() is done and closed the socket.
        if (ec == asio::error::eof)
          upstream_closed_ = true;
        else if (ec && ec != asio::error::operation_aborted)
          upstream_error_ = ec.message();
        read_done_ = true;
      }
      progress_.cancel();
      if (read_done_) co_return;
    }
  }

  // Waits until `ready()`, or until `timeout` passed with no byte read: false then.
  awaitable<bool> wait_for(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
    const auto since = SteadyClock::now();
    while (!ready()) {
      const auto deadline = std::max(since, last_read_) + timeout;
      if (SteadyClock::now() >= deadline) co_return false;
      progress_.expires_at(deadline);
      co_await progress_.async_wait(kTuple);  // also ends early at every read
    }
    co_return true;
  }

  awaitable<void> drive() {
    const auto start = SteadyClock::now();
    bool pace = options_.timing == ReplayOptions::Timing::fast;
    for (const Script::Step& step : script_.steps) {
      if (options_.timing == ReplayOptions::Timing::original) {
        const double offset = std::max(0.0, step.at - script_.connected_at);
        sleep_.expires_at(start + std::chrono::duration_cast<SteadyClock::duration>(
                                      std::chrono::duration<double>(offset)));
        co_await sleep_.async_wait(kTuple);
      } else if (pace) {
        // After one wait in vain the answer already differs: the rest goes without waiting.
        pace = co_await wait_for([&] { return read_done_ || got_.size() >= step.answer_before; },
                                 options_.timeout);
      }
      if (step.shutdown) {
        boost::system::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        continue;
      }
      asio::steady_timer deadline(socket_.get_executor());
      deadline.expires_after(options_.timeout);
      auto written = co_await (asio::async_write(socket_, asio::buffer(step.bytes), kTuple) ||
                               deadline.async_wait(kTuple));
      if (written.index() == 1) {
        problem_ = "the upstream took no more bytes for " +
                   std::to_string(options_.timeout.count()) + " ms (sent " + std::to_string(sent_) +
                   " of " + std::to_string(script_.bytes_to_send) + ")";
        break;
      }
      auto [ec, n] = std::get<0>(written);
      sent_ += n;
      if (ec) {
        problem_ = "sending failed after " + std::to_string(sent_) + " of " +
                   std::to_string(script_.bytes_to_send) + " bytes: " + ec.message();
        break;
      }
    }
    const auto& expected = script_.answer;
    if (script_.answer_ended) {
      co_await wait_for([&] { return read_done_; }, options_.timeout);
    } else if (co_await wait_for([&] { return read_done_ || got_.size() >= expected.size(); },
                                 options_.timeout) &&
               !script_.truncated) {
      // Anything past the recorded answer is a difference: give it a moment to show.
      co_await wait_for(
          [&] { return read_done_; },
          std::min<std::chrono::milliseconds>(options_.timeout, std::chrono::milliseconds(200)));
    }
    boost::system::error_code ec;
    socket_.close(ec);  // ends read_answer()
  }

  const Script& script_;
  const ReplayOptions& options_;
  tcp::socket socket_;
  asio::steady_timer progress_;  // cancelled at every read: wakes wait_for()
  asio::steady_timer sleep_;
  std::size_t cap_;
  std::string got_;
  SteadyClock::time_point last_read_{};
  bool connected_ = false, read_done_ = false, upstream_closed_ = false;
  std::string upstream_error_, problem_;
  std::size_t sent_ = 0;
};

// Up to 16 bytes of `expected` and `got` around `offset`, as hex and ASCII, with a marker under
// the first differing byte.
void show_context(std::ostream& out, std::string_view expected, std::string_view got,
                  std::size_t offset) {
  const std::size_t from = offset - std::min<std::size_t>(offset, 6);
  const auto line = [&](const char* label, std::string_view bytes) {
    std::ostringstream hex, ascii;
    for (std::size_t i = from; i < from + 16; ++i) {
      if (i < bytes.size()) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        static constexpr char digits[] = "0123456789abcdef";
        hex << digits[b >> 4] << digits[b & 15] << ' ';
        ascii << (b >= 0x20 && b < 0x7f ? static_cast<char>(b) : '.');
      } else {
        hex << "   ";
      }
    }
    out << "  " << label << " " << hex.str() << " |" << ascii.str() << "|\n";
  };
  out << "  bytes " << from << " to " << from + 15 << ":\n";
  line("recorded:", expected);
  line("got:     ", got);
  out << "  " << std::string(10 + 3 * (offset - from), ' ') << "^^\n";
}

int report(const Script& s, const Session& session, const ReplayOptions& options,
           std::ostream& out) {
  const std::string& expected = s.answer;
  const std::string& got = session.answer();
  const std::string counts = std::to_string(session.sent()) + " bytes sent, " +
                             std::to_string(got.size()) + " received, " +
                             std::to_string(expected.size()) + " recorded";
  const std::string how_ended = session.upstream_closed() ? "closed"
                                : !session.upstream_error().empty()
                                    ? "failed (" + session.upstream_error() + ")"
                                    : "stayed open";
  bool differs = !session.problem().empty();
  if (differs) out << "note: " << session.problem() << "\n";

  const std::size_t common = std::min(expected.size(), got.size());
  const std::size_t offset =
      std::mismatch(expected.begin(), expected.begin() + common, got.begin()).first -
      expected.begin();
  if (offset < common) {
    out << "differs: channel " << s.channel << ", first difference at offset " << offset << " ("
        << counts << ")\n";
    show_context(out, expected, got, offset);
    return kDiffers;
  }
  if (got.size() < expected.size()) {
    out << "differs: channel " << s.channel << ", the answer stops at offset " << got.size()
        << ": the upstream " << how_ended
        << (session.upstream_closed() || !session.upstream_error().empty()
                ? ""
                : " without sending more for " + std::to_string(options.timeout.count()) + " ms")
        << " (" << counts << ")\n";
    show_context(out, expected, got, got.size());
    return kDiffers;
  }
  if (got.size() > expected.size() && !s.truncated) {
    out << "differs: channel " << s.channel
        << ", the upstream sent more than recorded, from offset " << expected.size() << " ("
        << counts << ")\n";
    show_context(out, expected, got, expected.size());
    return kDiffers;
  }
  if (s.answer_ended && !session.upstream_closed()) {
    out << "differs: channel " << s.channel << ", the bytes match but the upstream " << how_ended
        << " where the recorded one closed (" << counts << ")\n";
    return kDiffers;
  }
  if (differs) {
    out << "differs: channel " << s.channel << ", the bytes received match, but not everything "
        << "was sent (" << counts << ")\n";
    return kDiffers;
  }
  out << "match: channel " << s.channel << ", " << counts
      << (s.truncated ? " (the recording was truncated by max_bytes: compared what it holds)" : "")
      << "\n";
  return kMatch;
}

}  // namespace

int replay(const ReplayOptions& options, std::ostream& out, std::ostream& err) {
  Script script;
  std::vector<tcp::endpoint> endpoints;
  asio::io_context io;
  try {
    script = load_script(options.file, options.channel);
    HostPort target;
    try {
      target = parse_host_port(options.upstream);
    } catch (const std::invalid_argument& e) {
      throw BadInput("--upstream: " + std::string(e.what()));
    }
    if (target.endpoint) {
      endpoints.push_back(*target.endpoint);
    } else {
      tcp::resolver resolver(io);
      boost::system::error_code ec;
      for (const auto& entry : resolver.resolve(target.host, std::to_string(target.port), ec))
        endpoints.push_back(entry.endpoint());
      if (ec) {
        err << "sluice replay: cannot resolve " << options.upstream << ": " << ec.message() << "\n";
        return kDiffers;
      }
    }
  } catch (const BadInput& e) {
    err << "sluice replay: " << e.what() << "\n";
    return kBadInput;
  }

  Session session(io, script, options);
  std::exception_ptr failure;
  asio::co_spawn(io, session.run(std::move(endpoints)), [&](std::exception_ptr e) { failure = e; });
  try {
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    err << "sluice replay: " << e.what() << "\n";
    return kDiffers;
  }
  if (!session.connected()) {
    err << "sluice replay: " << session.problem() << "\n";
    return kDiffers;
  }
  return report(script, session, options, out);
}

}  // namespace sluice
