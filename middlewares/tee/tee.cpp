#include "tee/tee.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::builtin {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct MirrorTarget {
  std::string text;  // as configured, for the log
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;
  std::optional<tcp::endpoint> endpoint;  // set when the host is an IP literal: no lookup
};

// What every channel of a listener shares, read-only. Mirror connections hold it too: they may
// outlive the factory (a reload while they linger).
struct Settings {
  std::vector<MirrorTarget> mirrors;
  bool upstream = true;
  bool downstream = false;
  std::uint64_t max_buffer = 0;
  std::chrono::milliseconds connect_timeout{0};
  std::chrono::milliseconds linger{0};

  bool copies(Direction d) const { return d == Direction::upstream ? upstream : downstream; }
};

std::string describe(std::chrono::milliseconds d) {
  return d.count() % 1000 ? std::to_string(d.count()) + "ms"
                          : std::to_string(d.count() / 1000) + "s";
}

MirrorTarget parse_mirror(std::string_view text, const std::string& path) {
  auto bad = [&](std::string_view why) -> MirrorTarget {
    throw ConfigError(path,
                      "expected HOST:PORT, e.g. \"127.0.0.1:9000\", \"[::1]:9000\" or "
                      "\"shadow.local:9000\", got \"" +
                          std::string(text) + "\" (" + std::string(why) + ")");
  };
  std::string_view host, port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("unterminated [IPv6]");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("put an IPv6 address in brackets");
  }
  if (host.empty()) return bad("no host");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535)
    return bad("port must be 1 to 65535");
  MirrorTarget out{std::string(text), std::string(host), std::to_string(value), std::nullopt};
  error_code not_ip;
  const auto ip = asio::ip::make_address(out.host, not_ip);
  if (!not_ip) {
    out.endpoint = tcp::endpoint(ip, static_cast<std::uint16_t>(value));
  } else {
    for (char c : out.host)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
        return bad("not an IP address or host name");
  }
  return out;
}

// One mirror connection of one channel. Owned by the channel's Tee and by its own pending
// handlers, so it lives on, without the channel, while it lingers. Every handler runs on the
// channel's thread. Byte accounting is exact: every copied byte is, at any time, in exactly one
// of copied_, dropped_ or the queue (pending_ and the unsent part of writing_).
class MirrorLink final : public std::enable_shared_from_this<MirrorLink> {
 public:
  MirrorLink(std::shared_ptr<const Settings> settings, std::size_t index, Context& ctx)
      : settings_(std::move(settings)),
        target_(settings_->mirrors[index]),
        ctx_(&ctx),
        socket_(ctx.io_context()),
        connect_deadline_(ctx.io_context()),
        linger_deadline_(ctx.io_context()) {}

  void start() {
    auto self = shared_from_this();
    connect_deadline_.expires_after(settings_->connect_timeout);
    connect_deadline_.async_wait([self](error_code ec) {
      if (!ec && self->state_ == State::connecting)
        self->give_up("connect timed out after " + describe(self->settings_->connect_timeout),
                      "connect timed out");
    });
    if (target_.endpoint) {
      socket_.async_connect(*target_.endpoint, [self](error_code ec) { self->connected(ec); });
      return;
    }
    ctx_->resolve(target_.host, target_.port,
                  [self](const error_code& ec, std::vector<tcp::endpoint> endpoints) {
                    if (self->state_ != State::connecting) return;  // timed out or closed meanwhile
                    if (ec) return self->connected(ec);
                    asio::async_connect(
                        self->socket_, endpoints,
                        [self](error_code ec, const tcp::endpoint&) { self->connected(ec); });
                  });
  }

  void copy(std::string_view bytes) {
    if (state_ != State::connecting && state_ != State::open) {
      dropped_ += bytes.size();
      return;
    }
    if (queued() + bytes.size() > settings_->max_buffer) {
      dropped_ += bytes.size();
      return give_up("more than max_buffer (" + std::to_string(settings_->max_buffer) +
                         " bytes) queued, the mirror is too slow",
                     "over max_buffer");
    }
    pending_.append(bytes);
    write_next();
  }

  // Every copied direction has ended: the mirror gets a FIN after the queue.
  void finish() {
    finishing_ = true;
    write_next();
  }

  // The channel closed: no more logging; what is queued may be flushed for `linger`.
  void detach() {
    if (!ctx_) return;
    ctx_ = nullptr;
    if (state_ != State::connecting && state_ != State::open) return;
    finishing_ = true;
    if (settings_->linger == std::chrono::milliseconds::zero()) return shut_down(State::closed);
    linger_deadline_.expires_after(settings_->linger);
    linger_deadline_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->shut_down(State::closed);
    });
    write_next();
  }

  std::string summary() const {
    std::string s = "mirror " + target_.text + ": " + std::to_string(copied_) + " bytes copied, " +
                    std::to_string(dropped_) + " dropped";
    if (!failure_.empty()) s += " (" + failure_ + ")";
    if (queued() != 0 && (state_ == State::connecting || state_ == State::open))
      s += ", " + std::to_string(queued()) +
           (settings_->linger.count()
                ? " queued (flushed for up to " + describe(settings_->linger) + ")"
                : " queued (not sent: linger is 0)");
    return s;
  }

 private:
  enum class State { connecting, open, failed, closed };

  std::uint64_t queued() const { return pending_.size() + writing_.size() - sent_; }

  void connected(error_code ec) {
    if (state_ != State::connecting) return;  // timed out, or closed after the channel
    connect_deadline_.cancel();
    if (ec) return give_up("connect failed: " + ec.message(), "connect failed");
    state_ = State::open;
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
    discard_replies();
    write_next();
  }

  // One send at a time from writing_, while new copies gather in pending_: order is kept, the
  // two buffers are reused, and copied_ follows each send (not just whole buffers).
  void write_next() {
    if (state_ != State::open || writing_in_flight_) return;
    if (sent_ == writing_.size()) {
      if (pending_.empty()) {
        if (finishing_ && !fin_sent_) {
          fin_sent_ = true;
          error_code ignored;
          socket_.shutdown(tcp::socket::shutdown_send, ignored);
          if (peer_done_) shut_down(State::closed);
        }
        return;
      }
      writing_.clear();
      sent_ = 0;
      writing_.swap(pending_);
    }
    writing_in_flight_ = true;
    socket_.async_write_some(
        asio::buffer(writing_.data() + sent_, writing_.size() - sent_),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->written(ec, n); });
  }

  void written(error_code ec, std::size_t n) {
    writing_in_flight_ = false;
    copied_ += n;
    sent_ += n;
    if (ec || state_ != State::open) {  // failed, or closed while this send was in flight
      dropped_ += writing_.size() - sent_;
      std::string().swap(writing_);
      sent_ = 0;
      if (ec && state_ == State::open) give_up("write failed: " + ec.message(), "write failed");
      return;
    }
    // A burst may have grown the buffers to max_buffer: an idle channel gives that back.
    if (sent_ == writing_.size() && pending_.empty() && writing_.capacity() > kKeptCapacity) {
      std::string().swap(writing_);
      sent_ = 0;
    }
    write_next();
  }

  // Replies are not wanted, but must be read: unread ones would fill the mirror's send buffer
  // (and stall it), and make our close a reset that could destroy copies not yet read.
  void discard_replies() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec || self->state_ != State::open) return;
      char sink[16 * 1024];
      for (int i = 0; i < 16; ++i) {
        error_code rec;
        self->socket_.read_some(asio::buffer(sink), rec);
        if (rec == asio::error::would_block || rec == asio::error::try_again) break;
        if (rec) {  // EOF or an error; a write error, if any, is what gets reported
          self->peer_done_ = true;
          if (self->fin_sent_) self->shut_down(State::closed);
          return;
        }
      }
      self->discard_replies();
    });
  }

  // This channel's copy ends for this mirror; the first reason is logged (once) and kept.
  void give_up(const std::string& message, std::string failure) {
    if (ctx_)
      ctx_->log(Level::warn, "mirror " + target_.text + ": " + message + "; dropping its copy (" +
                                 std::to_string(dropped_ + queued()) + " bytes dropped, " +
                                 std::to_string(copied_) + " copied)");
    failure_ = std::move(failure);
    shut_down(State::failed);
  }

  // Closes everything; pending handlers complete with operation_aborted and release the link.
  // The buffers' memory goes too: a link may linger a while (say, behind a queued DNS lookup).
  void shut_down(State to) {
    state_ = to;
    dropped_ += pending_.size();
    std::string().swap(pending_);
    if (!writing_in_flight_) {  // else the send's handler accounts for (and frees) the rest
      dropped_ += writing_.size() - sent_;
      std::string().swap(writing_);
      sent_ = 0;
    }
    error_code ignored;
    connect_deadline_.cancel();
    linger_deadline_.cancel();
    socket_.close(ignored);
  }

  static constexpr std::size_t kKeptCapacity = 64 * 1024;

  std::shared_ptr<const Settings> settings_;
  const MirrorTarget& target_;  // in *settings_
  Context* ctx_;                // null once the channel closed
  State state_ = State::connecting;
  tcp::socket socket_;
  asio::steady_timer connect_deadline_;
  asio::steady_timer linger_deadline_;
  std::string pending_;  // copies not yet handed to a write
  std::string writing_;  // the bytes being sent, sent_ of them already
  std::size_t sent_ = 0;
  bool writing_in_flight_ = false;
  bool finishing_ = false;  // no more copies will come: FIN after the queue
  bool fin_sent_ = false;
  bool peer_done_ = false;  // the mirror closed its side (or its read failed)
  std::uint64_t copied_ = 0;
  std::uint64_t dropped_ = 0;
  std::string failure_;
};

class Tee final : public Middleware {
 public:
  explicit Tee(std::shared_ptr<const Settings> settings) : settings_(std::move(settings)) {}
  ~Tee() override {
    for (auto& link : links_) link->detach();
  }

  void on_open(Context& ctx) override {
    for (std::size_t i = 0; i < settings_->mirrors.size(); ++i) {
      links_.push_back(std::make_shared<MirrorLink>(settings_, i, ctx));
      links_.back()->start();
    }
  }

  Verdict on_data(Context&, Direction dir, Chunk& chunk) override {
    if (settings_->copies(dir) && !chunk.empty())
      for (auto& link : links_) link->copy(chunk.view());
    return Verdict::pass;
  }

  void on_end(Context&, Direction dir) override {
    if (!settings_->copies(dir)) return;
    ended_[dir == Direction::upstream ? 0 : 1] = true;
    if ((ended_[0] || !settings_->upstream) && (ended_[1] || !settings_->downstream))
      for (auto& link : links_) link->finish();
  }

  void on_close(Context& ctx, const CloseInfo&) override {
    for (auto& link : links_) {
      ctx.log(Level::info, link->summary());
      link->detach();
    }
    links_.clear();
  }

 private:
  std::shared_ptr<const Settings> settings_;
  std::vector<std::shared_ptr<MirrorLink>> links_;
  bool ended_[2] = {false, false};
};

class TeeFactory final : public MiddlewareFactory {
 public:
  explicit TeeFactory(std::shared_ptr<const Settings> settings) : settings_(std::move(settings)) {}
  std::unique_ptr<Middleware> create() override { return std::make_unique<Tee>(settings_); }

 private:
  std::shared_ptr<const Settings> settings_;
};

}  // namespace

void register_tee(Registry& registry) {
  registry.add_middleware(
      "tee", "copies the traffic of each channel to mirror upstreams (shadow traffic)",
      [](Options& options, Services&) -> std::unique_ptr<MiddlewareFactory> {
        auto s = std::make_shared<Settings>();
        const auto mirrors = options.require<std::vector<std::string>>("mirrors");
        if (mirrors.empty()) options.fail("mirrors", "expected at least one \"host:port\"");
        for (std::size_t i = 0; i < mirrors.size(); ++i) {
          const std::string path = options.path_of("mirrors") + "/" + std::to_string(i);
          for (std::size_t j = 0; j < i; ++j)
            if (mirrors[j] == mirrors[i])
              throw ConfigError(path, "\"" + mirrors[i] + "\" is listed twice");
          s->mirrors.push_back(parse_mirror(mirrors[i], path));
        }
        const auto direction =
            options.choice("direction", {"upstream", "downstream", "both"}, "upstream");
        s->upstream = direction != "downstream";
        s->downstream = direction != "upstream";
        s->max_buffer = options.size("max_buffer", 1024 * 1024);
        if (s->max_buffer == 0) options.fail("max_buffer", "expected a size of at least 1 byte");
        s->connect_timeout = options.duration("connect_timeout", std::chrono::seconds(5));
        if (s->connect_timeout == std::chrono::milliseconds::zero())
          options.fail("connect_timeout", "expected a duration of at least 1ms");
        s->linger = options.duration("linger", std::chrono::seconds(1));
        return std::make_unique<TeeFactory>(std::move(s));
      });
}

}  // namespace sluice::builtin
