// file: tests/plugins/good/tally.cpp
// tally: an extension that counts channels and bytes for the whole process, and the middleware
// "tally-count" that reports every channel to it when the channel closes.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <sluice/plugin.hpp>

namespace tally {

// One object for the whole engine, shared by the channels of every worker thread: its public
// functions are thread-safe (atomics, no locks).
class Tally final : public sluice::Extension {
 public:
  // What Services::extension<Tally>() compares with type().
  static constexpr std::string_view type_name = "tally";

  explicit Tally(sluice::Services& services) : services_(services) {}
  std::string_view type() const override { return type_name; }
  void start() override { services_.log(sluice::Level::info, "tally extension started"); }
  void stop() override { services_.log(sluice::Level::info, "tally extension stopped"); }

  struct Totals {
    std::uint64_t channels;
    std::uint64_t bytes;
  };
  // Adds one channel and its bytes; returns the totals including them.
  Totals add_channel(std::uint64_t bytes) {
    return {channels_.fetch_add(1) + 1, bytes_.fetch_add(bytes) + bytes};
  }
  Totals totals() const { return {channels_.load(), bytes_.load()}; }

 private:
  sluice::Services& services_;  // outlives every extension it made
  std::atomic<std::uint64_t> channels_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

class TallyCount final : public sluice::Middleware {
 public:
  explicit TallyCount(Tally& tally) : tally_(tally) {}
  void on_close(sluice::Context& ctx, const sluice::CloseInfo& info) override {
    const auto totals = tally_.add_channel(info.bytes_from_client + info.bytes_from_upstream);
    ctx.log(sluice::Level::info, "tally: " + std::to_string(totals.channels) + " channels, " +
                                     std::to_string(totals.bytes) + " bytes");
  }

 private:
  Tally& tally_;
};

class TallyCountFactory final : public sluice::MiddlewareFactory {
 public:
  explicit TallyCountFactory(Tally& tally) : tally_(tally) {}
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<TallyCount>(tally_);
  }

 private:
  Tally& tally_;
};

void register_types(sluice::Registry& registry) {
  registry.add_extension(
      "tally", "test: counts channels and bytes of every listener",
      [](sluice::Options&, sluice::Services& services) -> std::unique_ptr<sluice::Extension> {
        return std::make_unique<Tally>(services);
      });
  registry.add_middleware(
      "tally-count",
      "test: adds each channel's bytes to the tally extension named by \"extension\"",
      [](sluice::Options& options,
         sluice::Services& services) -> std::unique_ptr<sluice::MiddlewareFactory> {
        // A missing or unknown name, or an extension of another type, is a ConfigError at
        // this option's JSON path.
        Tally& tally = services.extension<Tally>(options, "extension");
        return std::make_unique<TallyCountFactory>(tally);
      });
}

}  // namespace tally

SLUICE_PLUGIN(tally::register_types)
