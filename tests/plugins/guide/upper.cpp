// file: tests/plugins/guide/upper.cpp
// upper: upper-cases the bytes the client sends; the upstream's answers pass unchanged.
#include <cctype>
#include <memory>

#include <sluice/plugin.hpp>

namespace upper {

// One per channel, made by the factory below. Its hooks run on the channel's worker thread.
class Upper final : public sluice::Middleware {
 public:
  sluice::Verdict on_data(sluice::Context&, sluice::Direction dir, sluice::Chunk& chunk) override {
    if (dir == sluice::Direction::upstream)
      for (char& c : chunk.bytes()) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return sluice::Verdict::pass;  // what is left in `chunk` goes on to the next middleware
  }
};

// One per listener; create() is called for every accepted client, from every worker thread.
class UpperFactory final : public sluice::MiddlewareFactory {
 public:
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<Upper>(); }
};

void register_types(sluice::Registry& registry) {
  registry.add_middleware(
      "upper", "upper-cases the bytes from the client",
      [](sluice::Options&, sluice::Services&) -> std::unique_ptr<sluice::MiddlewareFactory> {
        return std::make_unique<UpperFactory>();  // no options: any key is "unknown key"
      });
}

}  // namespace upper

SLUICE_PLUGIN(upper::register_types)
