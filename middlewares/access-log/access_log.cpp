#include "access-log/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>

#include "sluice/output_path.hpp"

namespace sluice::builtin {
namespace {

using SystemClock = std::chrono::system_clock;

std::string iso8601_utc(SystemClock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), int(time.hours().count()),
                int(time.minutes().count()), int(time.seconds().count()),
                int(time.subseconds().count()));
  return buf;
}

// Shared by every worker thread: the mutex keeps lines whole, and each line is written straight
// to the file descriptor, so nothing sits in a buffer if the process dies.
class AccessLogFactory final : public MiddlewareFactory {
 public:
  // `path`: "-" for stderr, or a file checked but not opened yet (start() does).
  explicit AccessLogFactory(std::filesystem::path path) : path_(std::move(path)) {
    if (path_ == "-") fd_ = STDERR_FILENO;
  }
  ~AccessLogFactory() override {
    if (owned_) ::close(fd_);
  }
  AccessLogFactory(const AccessLogFactory&) = delete;
  AccessLogFactory& operator=(const AccessLogFactory&) = delete;

  std::unique_ptr<Middleware> create() override;
  void start() override {
    if (fd_ >= 0) return;
    // Not "fd_ != STDERR_FILENO" later: with stderr closed, the file may get descriptor 2.
    fd_ = output_path::open_for_appending(path_);
    owned_ = true;
  }
  bool sees_bytes() const override { return false; }  // counts come from CloseInfo

  // Returns 0 or the errno of the failed write.
  int write_line(std::string_view line) {
    std::lock_guard lock(mutex_);
    while (!line.empty()) {
      const ssize_t n = ::write(fd_, line.data(), line.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      line.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
  }

 private:
  std::mutex mutex_;
  const std::filesystem::path path_;
  int fd_ = -1;
  bool owned_ = false;
};

class AccessLog final : public Middleware {
 public:
  // create() runs as the channel opens, just before on_open. Taking the time here rather than in
  // on_open also covers a channel that an earlier middleware rejected in its on_open: this
  // on_open never runs, but on_close does and the line is still worth writing.
  explicit AccessLog(AccessLogFactory& factory) : factory_(factory), opened_(SystemClock::now()) {}

  void on_close(Context& ctx, const CloseInfo& info) override {
    const double duration_ms =
        std::round(std::chrono::duration<double, std::micro>(info.duration).count()) / 1000.0;
    const nlohmann::ordered_json line = {
        {"time", iso8601_utc(opened_)},
        {"listener", ctx.listener()},
        {"channel", ctx.channel_id()},
        {"client", ctx.client_address()},
        {"upstream", ctx.upstream_address()},
        {"upstream_connected", info.upstream_connected},
        {"bytes_from_client", info.bytes_from_client},
        {"bytes_to_upstream", info.bytes_to_upstream},
        {"bytes_from_upstream", info.bytes_from_upstream},
        {"bytes_to_client", info.bytes_to_client},
        {"duration_ms", duration_ms},
        {"reason", info.reason},
    };
    // `replace`: a reason quoting peer bytes may not be UTF-8, and the line must still be written.
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + '\n';
    if (const int err = factory_.write_line(text); err != 0 && ctx.log_enabled(Level::warn))
      ctx.log(Level::warn, "access log write failed: " + std::system_category().message(err));
  }

 private:
  AccessLogFactory& factory_;
  SystemClock::time_point opened_;
};

std::unique_ptr<Middleware> AccessLogFactory::create() {
  return std::make_unique<AccessLog>(*this);
}

}  // namespace

void register_access_log(Registry& registry) {
  registry.add_middleware("access-log",
                          "writes one JSON line per channel when it closes (to stderr or a file)",
                          [](Options& options, Services&) -> std::unique_ptr<MiddlewareFactory> {
                            const auto path = options.get<std::string>("path", "-");
                            if (path != "-")
                              if (const auto problem = output_path::append_problem(path))
                                options.fail("path", *problem);
                            return std::make_unique<AccessLogFactory>(path);
                          });
}

}  // namespace sluice::builtin
