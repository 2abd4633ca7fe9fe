// faulty: a test middleware that throws on purpose, to check that a throwing middleware closes
// only its own channel (and that a maker's ConfigError reaches the user with its JSON path).
//   throw_on_chunk   integer >= 1, default 3: the N-th on_data call of a channel (both directions
//                    counted together) throws std::runtime_error("faulty: chunk N"); every other
//                    chunk passes unchanged.
//   throw_in_factory bool, default false: the maker refuses its options with a ConfigError at
//                    this option's path ("factory refused the options").
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "sluice/plugin.hpp"

namespace {

class Faulty final : public sluice::Middleware {
 public:
  explicit Faulty(std::int64_t throw_on) : throw_on_(throw_on) {}
  sluice::Verdict on_data(sluice::Context&, sluice::Direction, sluice::Chunk&) override {
    if (++seen_ == throw_on_) throw std::runtime_error("faulty: chunk " + std::to_string(seen_));
    return sluice::Verdict::pass;
  }

 private:
  std::int64_t throw_on_;
  std::int64_t seen_ = 0;
};

class FaultyFactory final : public sluice::MiddlewareFactory {
 public:
  explicit FaultyFactory(std::int64_t throw_on) : throw_on_(throw_on) {}
  std::unique_ptr<sluice::Middleware> create() override {
    return std::make_unique<Faulty>(throw_on_);
  }

 private:
  const std::int64_t throw_on_;
};

void register_faulty(sluice::Registry& registry) {
  registry.add_middleware(
      "faulty", "test: throws from on_data on the N-th chunk of a channel (throw_on_chunk)",
      [](sluice::Options& options,
         sluice::Services&) -> std::unique_ptr<sluice::MiddlewareFactory> {
        const auto throw_on = options.get<std::int64_t>("throw_on_chunk", 3);
        if (throw_on < 1)
          options.fail("throw_on_chunk",
                       "expected an integer of at least 1, got " + std::to_string(throw_on));
        if (options.get<bool>("throw_in_factory", false))
          options.fail("throw_in_factory", "factory refused the options");
        return std::make_unique<FaultyFactory>(throw_on);
      });
}

}  // namespace

SLUICE_PLUGIN(register_faulty)
