// Example plugin: a middleware that needs state across chunks, and an extension it reports to.
//
// "line-tag" puts a tag in front of every line the client sends (upstream direction). A line can
// arrive split over several reads, so the middleware carries the unfinished tail of the last
// chunk until its newline comes (at most max_line bytes; a longer line goes out as it is).
// "line-stats" is an engine-wide extension that counts the lines of every channel; the
// middlewares of all workers call it at once, so it uses atomics.
#include <atomic>
#include <memory>
#include <sluice/plugin.hpp>
#include <string>

namespace {

class LineStats final : public sluice::Extension {
 public:
  static constexpr std::string_view type_name = "line-stats";
  explicit LineStats(sluice::Services& services) : services_(services) {}
  std::string_view type() const override { return type_name; }
  void stop() override {
    services_.log(sluice::Level::info, "line-stats: " + std::to_string(lines_.load()) +
                                           " lines in " + std::to_string(channels_.load()) +
                                           " channels");
  }
  void record(std::uint64_t lines) {
    lines_ += lines;
    ++channels_;
  }
  std::uint64_t lines() const { return lines_; }

 private:
  sluice::Services& services_;
  std::atomic<std::uint64_t> lines_{0}, channels_{0};
};

struct LineTagOptions {
  std::string tag;
  std::size_t max_line;
  LineStats* stats;  // may be null
};

class LineTag final : public sluice::Middleware {
 public:
  explicit LineTag(const LineTagOptions& options) : options_(options) {}

  sluice::Verdict on_data(sluice::Context&, sluice::Direction dir, sluice::Chunk& chunk) override {
    if (dir != sluice::Direction::upstream) return sluice::Verdict::pass;
    std::string out;
    std::string_view in = chunk.view();
    while (!in.empty()) {
      const auto nl = in.find('\n');
      const auto piece = in.substr(0, nl == std::string_view::npos ? in.size() : nl + 1);
      partial_ += piece;
      in.remove_prefix(piece.size());
      if (nl != std::string_view::npos || partial_.size() >= options_.max_line) {
        out += options_.tag;
        out += partial_;
        partial_.clear();
        ++lines_;
      }
    }
    chunk.assign(out);  // an empty chunk stops here: the tail waits in partial_
    return sluice::Verdict::pass;
  }

  void on_end(sluice::Context& ctx, sluice::Direction dir) override {
    // The client is done: its last line has no newline, but it is still a line.
    if (dir != sluice::Direction::upstream || partial_.empty()) return;
    ctx.send(dir, options_.tag + partial_);
    partial_.clear();
    ++lines_;
  }

  void on_close(sluice::Context&, const sluice::CloseInfo&) override {
    if (options_.stats) options_.stats->record(lines_);
  }

 private:
  const LineTagOptions& options_;
  std::string partial_;
  std::uint64_t lines_ = 0;
};

class LineTagFactory final : public sluice::MiddlewareFactory {
 public:
  explicit LineTagFactory(LineTagOptions options) : options_(std::move(options)) {}
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<LineTag>(options_);
  }

 private:
  LineTagOptions options_;
};

void register_types(sluice::Registry& registry) {
  registry.add_extension("line-stats", "counts the lines line-tag saw, over all channels",
                         [](sluice::Options&, sluice::Services& services) {
                           return std::make_unique<LineStats>(services);
                         });
  registry.add_middleware(
      "line-tag", "prefixes every client line with a tag; reports to a line-stats extension",
      [](sluice::Options& options, sluice::Services& services) {
        LineTagOptions o;
        o.tag = options.require<std::string>("tag");
        o.max_line = options.size("max_line", 64 * 1024);
        if (o.max_line == 0) options.fail("max_line", "must be at least 1");
        o.stats = options.has("stats") ? &services.extension<LineStats>(options, "stats") : nullptr;
        return std::make_unique<LineTagFactory>(std::move(o));
      });
}

}  // namespace

SLUICE_PLUGIN(register_types)
