#include "capture/capture.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "capture/capture_file.hpp"
#include "capture/pcap.hpp"
#include "sluice/output_path.hpp"

namespace sluice::builtin {
namespace {

namespace fs = std::filesystem;
using capture::Address;
using capture::CaptureFile;
using capture::Side;
using capture::TcpFlow;
using std::chrono::nanoseconds;

constexpr std::uint64_t kMinFileBytes = 64 * 1024;
// Payload a channel may keep while it waits for its upstream address.
constexpr std::size_t kPendingLimit = 1024 * 1024;
constexpr auto kFlushAfter = std::chrono::seconds(1);
constexpr std::size_t kKeptRecordBuffer = 4096;

std::string quoted(const fs::path& p) {
  return "\"" + p.string() + "\"";
}

// Every listener (and every config loaded by a reload) that captures into one file shares one
// CaptureFile, so records of all of them stay whole and rotation counts all of them. Taking it
// changes nothing of it: a reload refused after this start() leaves the running config's
// capture as it was (each writer's max_file_bytes goes with its records).
std::shared_ptr<CaptureFile> shared_file(const fs::path& path, Services& services) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<CaptureFile>> files;
  std::error_code ec;
  fs::path key = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) key = fs::absolute(path).lexically_normal();
  std::lock_guard lock(mutex);
  std::erase_if(files, [](const auto& entry) { return entry.second.expired(); });
  if (auto file = files[key.string()].lock(); file && !file->failed()) return file;
  auto file = std::make_shared<CaptureFile>(path, CaptureFile::Mode::append);
  if (!file->unlisted_folder().empty()) services.log(Level::warn, file->unlisted_folder());
  if (const auto cut = file->cut_on_open())
    services.log(Level::warn, quoted(file->current_path()) + ": cut a partial last record (" +
                                  std::to_string(cut) + " bytes) off before appending");
  files[key.string()] = file;
  return file;
}

// Listener names are free text; keep file names portable.
std::string file_name_part(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.';
    out += plain ? c : '_';
  }
  return out.empty() ? "_" : out;
}

// "20250102T030405.678Z": sorts like the time it names.
std::string utc_basic(nanoseconds since_epoch) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(sys_time<nanoseconds>(since_epoch));
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02d.%03dZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), int(time.hours().count()),
                int(time.minutes().count()), int(time.seconds().count()),
                int(time.subseconds().count()));
  return buf;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

class CaptureFactory final : public MiddlewareFactory {
 public:
  // `path`: the shared file, or with `folder` the folder of per-channel files; checked, not
  // opened or created yet (start() does).
  CaptureFactory(fs::path path, bool folder, std::uint64_t max_bytes, std::size_t snaplen,
                 Services& services)
      : path_(std::move(path)),
        folder_(folder),
        max_bytes_(max_bytes),
        snaplen_(snaplen),
        services_(services) {}

  std::unique_ptr<Middleware> create() override;
  void start() override {
    if (folder_)
      output_path::create_folder(path_);
    else
      file_ = shared_file(path_, services_);
  }

  // The shared file, or nullptr in folder mode.
  const std::shared_ptr<CaptureFile>& file() const { return file_; }
  const fs::path& folder() const { return path_; }
  std::uint64_t max_bytes() const { return max_bytes_; }
  std::size_t snaplen() const { return snaplen_; }

 private:
  const fs::path path_;
  const bool folder_;
  const std::uint64_t max_bytes_;
  const std::size_t snaplen_;
  Services& services_;
  std::shared_ptr<CaptureFile> file_;  // shared mode, from start()
};

class Capture final : public Middleware {
 public:
  explicit Capture(const CaptureFactory& factory) : factory_(factory), file_(factory.file()) {}

  void on_open(Context& ctx) override { start(ctx); }

  void on_connected(Context& ctx) override {
    start(ctx);
    if (!flow_) begin(ctx);
  }

  Verdict on_data(Context& ctx, Direction dir, Chunk& chunk) override {
    start(ctx);
    if (chunk.empty()) return Verdict::pass;
    if (flow_) {
      flow_->data(out_, stamp(ctx), side(dir), chunk.view());
      write(ctx);
      return Verdict::pass;
    }
    pending_.push_back({stamp(ctx), side(dir), false, std::string(chunk.view())});
    pending_bytes_ += chunk.size();
    if (pending_bytes_ > kPendingLimit) begin(ctx);
    return Verdict::pass;
  }

  void on_end(Context& ctx, Direction dir) override {
    start(ctx);
    if (flow_) {
      flow_->fin(out_, stamp(ctx), side(dir));
      write(ctx);
    } else {
      pending_.push_back({stamp(ctx), side(dir), true, {}});
    }
  }

  void on_close(Context& ctx, const CloseInfo& info) override {
    start(ctx);
    if (!flow_) begin(ctx);
    const nanoseconds t = stamp(ctx);
    const std::string_view reason = info.reason;
    if (!flow_->finished(Side::client) || !flow_->finished(Side::server)) {
      // The engine's reasons for an abort (it resets both peers); CloseInfo does not say so.
      if (contains(reason, "reset") || contains(reason, "failed") || contains(reason, "error") ||
          contains(reason, "threw") || contains(reason, "timed out")) {
        const bool by_upstream = reason.starts_with("upstream") || contains(reason, "to upstream");
        flow_->reset(out_, t, by_upstream ? Side::server : Side::client);
      } else {
        flow_->fin(out_, t, Side::client);
        flow_->fin(out_, t, Side::server);
      }
    }
    write(ctx);
    if (flush_timer_) ctx.cancel_timer(flush_timer_);
    flush_timer_ = 0;
    if (file_) report(ctx, file_->flush());
    file_.reset();  // in folder mode, closes the channel's file
  }

 private:
  struct Pending {
    nanoseconds time;
    Side from;
    bool fin;
    std::string bytes;
  };

  static Side side(Direction d) { return d == Direction::upstream ? Side::client : Side::server; }

  // The clocks are read at the first hook (on_open, or on_close if an earlier middleware
  // rejected the channel so that on_open never ran here).
  void start(Context& ctx) {
    if (ctx_) return;
    ctx_ = &ctx;
    opened_ = std::chrono::system_clock::now().time_since_epoch();
    steady_opened_ = ctx.now();
  }
  nanoseconds stamp(const Context& ctx) const { return opened_ + (ctx.now() - steady_opened_); }

  // The addresses are known (or will never be better known): start the conversation and write
  // what waited for it.
  void begin(Context& ctx) {
    const auto client = Address::parse(ctx.client_address());
    const Address client_address =
        client ? *client : Address::any(false, capture::port_of(ctx.client_address()));
    const auto upstream = Address::parse(ctx.upstream_address());
    const Address server_address =
        upstream ? *upstream
                 : Address::any(client_address.v6, capture::port_of(ctx.upstream_address()));
    const std::uint64_t isn = mix(ctx.channel_id() ^ static_cast<std::uint64_t>(opened_.count()));
    flow_.emplace(client_address, server_address, static_cast<std::uint32_t>(isn),
                  static_cast<std::uint32_t>(isn >> 32), factory_.snaplen());
    flow_->open(out_, opened_);
    for (Pending& p : pending_) {
      if (p.fin)
        flow_->fin(out_, p.time, p.from);
      else
        flow_->data(out_, p.time, p.from, p.bytes);
    }
    pending_.clear();
    pending_.shrink_to_fit();
    pending_bytes_ = 0;
    write(ctx);
  }

  void write(Context& ctx) {
    if (out_.empty()) return;
    if (!file_ && !factory_.file() && !folder_failed_) open_channel_file(ctx);
    if (file_) {
      report(ctx, file_->append(out_, factory_.max_bytes()));
      if (!flush_timer_) {
        flush_timer_ = ctx.start_timer(kFlushAfter, [this] {
          flush_timer_ = 0;
          if (file_) report(*ctx_, file_->flush());
        });
      }
    }
    // A bulk chunk's records are as large as the chunk: don't keep that much per idle channel.
    if (out_.capacity() > kKeptRecordBuffer)
      out_ = std::string();
    else
      out_.clear();
  }

  void open_channel_file(Context& ctx) {
    const std::string base = utc_basic(opened_) + "_" + file_name_part(ctx.listener()) + "_ch" +
                             std::to_string(ctx.channel_id());
    // Another sluice capturing into the same folder may have had the same channel id in the same
    // millisecond: never write into its file, take the next free `-2`, `-3`... name.
    for (int attempt = 1; attempt <= 10; ++attempt) {
      const fs::path path = factory_.folder() /
                            (base + (attempt == 1 ? "" : "-" + std::to_string(attempt)) + ".pcap");
      try {
        file_ = std::make_shared<CaptureFile>(path, CaptureFile::Mode::create);
        return;
      } catch (const std::exception& e) {
        const auto* open_failed = dynamic_cast<const std::system_error*>(&e);
        if (open_failed && open_failed->code() == std::errc::file_exists && attempt < 10) continue;
        folder_failed_ = true;
        return report(ctx, std::string(e.what()) + "; this channel is not captured");
      }
    }
  }

  static void report(Context& ctx, const std::optional<std::string>& error) {
    if (error && ctx.log_enabled(Level::warn)) ctx.log(Level::warn, *error);
  }

  const CaptureFactory& factory_;
  std::shared_ptr<CaptureFile> file_;
  Context* ctx_ = nullptr;
  nanoseconds opened_{};
  Clock::time_point steady_opened_{};
  std::optional<TcpFlow> flow_;
  std::vector<Pending> pending_;
  std::size_t pending_bytes_ = 0;
  std::string out_;  // records not yet handed to the file
  TimerId flush_timer_ = 0;
  bool folder_failed_ = false;
};

std::unique_ptr<Middleware> CaptureFactory::create() {
  return std::make_unique<Capture>(*this);
}

}  // namespace

void register_capture(Registry& registry) {
  registry.add_middleware(
      "capture", "writes the traffic into pcap files (Wireshark/tshark) as TCP conversations",
      [](Options& options, Services& services) -> std::unique_ptr<MiddlewareFactory> {
        const auto path = options.require<std::string>("path");
        if (path.empty()) options.fail("path", "expected a file or folder path, got \"\"");
        const std::uint64_t max_bytes = options.size("max_file_bytes", 0);
        if (max_bytes != 0 && max_bytes < kMinFileBytes)
          options.fail("max_file_bytes", "expected 0 (no limit) or at least 64KiB, got " +
                                             std::to_string(max_bytes) + " bytes");
        const std::uint64_t snaplen = options.size("snaplen", 0);
        const bool folder = output_path::names_folder(path);
        if (const auto problem =
                folder ? output_path::folder_problem(path) : CaptureFile::append_problem(path))
          options.fail("path", *problem);
        return std::make_unique<CaptureFactory>(path, folder, max_bytes,
                                                static_cast<std::size_t>(snaplen), services);
      });
}

}  // namespace sluice::builtin
