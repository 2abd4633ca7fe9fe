#include "record/record.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>

#include "record/format/recording.hpp"
#include "sluice/output_path.hpp"

namespace sluice::builtin {
namespace {

namespace rec = sluice::recording;
using SystemClock = std::chrono::system_clock;

std::string error_text(int err) {
  return std::system_category().message(err);
}

// Returns 0 or the errno of the failed write.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

// Made once per listener chain and shared by every worker thread: the shared file's descriptor
// and its mutex (which keeps lines whole), or the folder for per-channel files.
class RecordFactory final : public MiddlewareFactory {
 public:
  // `path`: the shared file, or with `folder` the folder of per-channel files; checked, not
  // created yet (start() does).
  RecordFactory(std::filesystem::path path, bool folder, std::uint64_t max_bytes)
      : path_(std::move(path)), folder_(folder), max_bytes_(max_bytes) {}
  ~RecordFactory() override {
    if (shared_fd_ >= 0) ::close(shared_fd_);
  }
  RecordFactory(const RecordFactory&) = delete;
  RecordFactory& operator=(const RecordFactory&) = delete;

  std::unique_ptr<Middleware> create() override;
  void start() override {
    if (folder_)
      output_path::create_folder(path_);
    else
      shared_fd_ = output_path::open_for_appending(path_);
  }

  bool shared() const { return !folder_; }
  std::uint64_t max_bytes() const { return max_bytes_; }

  int write_shared(std::string_view line) {
    std::lock_guard lock(mutex_);
    return write_all(shared_fd_, line);
  }

  // Creates the channel's own file in the folder; returns its descriptor, or -1 with `error` set.
  int open_channel_file(std::uint64_t channel, SystemClock::time_point opened, std::string& error) {
    std::string stamp;
    for (char c : rec::iso8601_utc(opened))
      if (c != '-' && c != ':') stamp += c;  // 20261123T153514.123Z: valid on every file system
    const std::string base = stamp + "-ch" + std::to_string(channel);
    // Another sluice recording into the same folder may have had the same channel id in the same
    // millisecond: never append to its file.
    for (int attempt = 1; attempt <= 10; ++attempt) {
      const auto file =
          path_ / (base + (attempt == 1 ? "" : "-" + std::to_string(attempt)) + ".jsonl");
      const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd >= 0) return fd;
      const int err = errno;
      if (err != EEXIST) {
        error = "cannot create \"" + file.string() + "\": " + error_text(err);
        return -1;
      }
    }
    error = "cannot create a file for " + base + " in \"" + path_.string() + "\": names taken";
    return -1;
  }

  // Once per chain at warn, then at debug: a full disk must not flood the log.
  Level failure_level() { return failed_.exchange(true) ? Level::debug : Level::warn; }

 private:
  std::mutex mutex_;
  const std::filesystem::path path_;
  const bool folder_;
  int shared_fd_ = -1;  // set by start()
  const std::uint64_t max_bytes_;
  std::atomic<bool> failed_{false};
};

class Record final : public Middleware {
 public:
  explicit Record(RecordFactory& factory) : factory_(factory) {}
  ~Record() override { close_own_file(); }
  Record(const Record&) = delete;
  Record& operator=(const Record&) = delete;

  void on_open(Context& ctx) override { start(ctx); }

  void on_connected(Context& ctx) override {
    start(ctx);
    write(ctx, rec::Connected{std::string(ctx.upstream_address())});
  }

  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    start(ctx);
    if (truncated_) return Verdict::pass;
    std::string_view bytes = chunk.view();
    const std::uint64_t max = factory_.max_bytes();
    const bool cut = max != 0 && bytes.size() > max - recorded_;
    if (cut) bytes = bytes.substr(0, max - recorded_);
    // An empty chunk only reaches us as an empty message (after a layer): record it as one.
    if (!cut || !bytes.empty()) write(ctx, rec::Data{dir, std::string(bytes)});
    recorded_ += bytes.size();
    if (cut) {
      truncated_ = true;
      write(ctx, rec::Truncated{});
    }
    return Verdict::pass;
  }

  void on_end(Context& ctx, Direction dir) override {
    start(ctx);
    write(ctx, rec::End{dir});
  }

  void on_close(Context& ctx, const CloseInfo& info) override {
    start(ctx);
    write(ctx, rec::Close{rec::iso8601_utc(wall_time(ctx)), std::string(info.reason),
                          info.upstream_connected, info.bytes_from_client, info.bytes_to_upstream,
                          info.bytes_from_upstream, info.bytes_to_client});
    close_own_file();
  }

 private:
  // On the first hook, which is on_open unless an earlier middleware rejected the channel there:
  // then on_close comes alone, and the recording still gets its open line.
  void start(Context& ctx) {
    if (started_) return;
    started_ = true;
    opened_steady_ = ctx.now();
    opened_wall_ = SystemClock::now();
    if (!factory_.shared()) {
      std::string error;
      own_fd_ = factory_.open_channel_file(ctx.channel_id(), opened_wall_, error);
      if (own_fd_ < 0) return fail(ctx, error);
    }
    write_line(ctx, 0.0,
               rec::Open{rec::iso8601_utc(opened_wall_), std::string(ctx.listener()),
                         std::string(ctx.client_address()), std::string(ctx.upstream_address()),
                         ctx.messages()});
  }

  // The wall clock moved on from the open by as much as the channel's clock (which is the
  // harness' fake clock in tests), so times in one recording agree with its "t" values.
  SystemClock::time_point wall_time(const Context& ctx) const {
    return opened_wall_ +
           std::chrono::duration_cast<SystemClock::duration>(ctx.now() - opened_steady_);
  }

  void write(Context& ctx, rec::Event event) {
    write_line(ctx, rec::seconds(ctx.now() - opened_steady_), std::move(event));
  }
  void write_line(Context& ctx, double t, rec::Event event) {
    if (failed_) return;
    const std::string text = rec::encode({ctx.channel_id(), t, std::move(event)});
    const int err = factory_.shared() ? factory_.write_shared(text) : write_all(own_fd_, text);
    if (err != 0) fail(ctx, "write failed: " + error_text(err));
  }

  void fail(Context& ctx, const std::string& why) {
    failed_ = true;
    close_own_file();
    const Level level = factory_.failure_level();
    if (ctx.log_enabled(level)) ctx.log(level, why + "; this channel is no longer recorded");
  }

  void close_own_file() {
    if (own_fd_ >= 0) ::close(own_fd_);
    own_fd_ = -1;
  }

  RecordFactory& factory_;
  int own_fd_ = -1;  // folder mode: this channel's file
  bool started_ = false, failed_ = false, truncated_ = false;
  std::uint64_t recorded_ = 0;  // data bytes written, both directions
  Clock::time_point opened_steady_{};
  SystemClock::time_point opened_wall_{};
};

std::unique_ptr<Middleware> RecordFactory::create() {
  return std::make_unique<Record>(*this);
}

}  // namespace

void register_record(Registry& registry) {
  registry.add_middleware(
      "record", "records every channel's bytes and events as JSON lines, for `sluice replay`",
      [](Options& options, Services&) -> std::unique_ptr<MiddlewareFactory> {
        const auto path = options.require<std::string>("path");
        if (path.empty()) options.fail("path", "expected a file or folder path, got \"\"");
        const std::uint64_t max_bytes = options.size("max_bytes", 0);
        const bool folder = output_path::names_folder(path);
        if (const auto problem =
                folder ? output_path::folder_problem(path) : output_path::append_problem(path))
          options.fail("path", *problem);
        return std::make_unique<RecordFactory>(path, folder, max_bytes);
      });
}

}  // namespace sluice::builtin
